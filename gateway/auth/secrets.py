"""Hashing and generating the secrets idgate keeps: passwords and bearer tokens (SPEC §7, §8).

Every stored secret is an argon2id hash in PHC string format (``$argon2id$v=19$m=...``),
produced by argon2-cffi's ``PasswordHasher`` with its defaults (RFC 9106's low-memory
profile). Nothing here ever logs or returns a cleartext secret.

Cleartext secrets that idgate must *use* rather than check (an upstream bind password, an
SMTP password, a webhook signing key) are held as :class:`pydantic.SecretStr`: its ``repr``
and ``str`` print ``**********``, ``model_dump_json`` does too, and the value is reached
only through the explicit, greppable ``get_secret_value()``. A home-grown ``Secret`` class
would need its own pydantic schema to do the same, so there is none.
"""

import base64
import binascii
import re
import secrets

from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["generate_token", "hash_secret", "is_argon2_hash", "needs_rehash", "verify_secret"]

_HASHER = PasswordHasher(type=Type.ID)

# PHC string: $argon2{i,d,id}$v=19$m=..,t=..,p=..$<salt>$<hash>, salt and hash in unpadded
# standard base64. argon2-cffi's extract_parameters checks the middle; this checks the ends.
_PHC = re.compile(r"\$argon2(?:id|i|d)\$(?:v=\d+\$)?[^$]+\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)")
# RFC 9106 §3.1: the salt is at least 8 bytes, the tag at least 4.
_MIN_SALT_BYTES = 8
_MIN_HASH_BYTES = 4


def hash_secret(secret: str) -> str:
    """Hash a password or token with argon2id.

    :param secret: the cleartext; must not be empty (an empty password is an
        unauthenticated bind, RFC 4513 §5.1.2, and can never be a credential).
    :returns: the PHC-format hash, e.g. ``$argon2id$v=19$m=65536,t=3,p=4$...``.
    :raises ValueError: when ``secret`` is empty.
    """
    if not secret:
        raise ValueError("refusing to hash an empty secret")
    return _HASHER.hash(secret)


def verify_secret(hash: str, secret: str) -> bool:
    """Tell whether ``secret`` matches ``hash``.

    Never raises for a wrong secret, a malformed or truncated hash, or a hash argon2 cannot
    verify: all of these are ``False``. An empty ``secret`` is always ``False``. The
    comparison itself is argon2's, in constant time.
    """
    if not isinstance(hash, str) or not isinstance(secret, str) or not secret:
        return False
    try:
        return _HASHER.verify(hash, secret)
    except (VerificationError, InvalidHashError):
        # VerifyMismatchError is a VerificationError; a malformed hash raises either one.
        return False


def needs_rehash(hash: str) -> bool:
    """Tell whether ``hash`` was made with weaker parameters than today's defaults.

    Callers holding the cleartext after a successful :func:`verify_secret` (a local user's
    bind) may then store a fresh :func:`hash_secret`. A malformed hash needs rehashing.
    """
    if not is_argon2_hash(hash):
        return True
    return _HASHER.check_needs_rehash(hash)


def is_argon2_hash(value: object) -> bool:
    """Tell whether ``value`` is a well-formed argon2 (i, d or id) hash in PHC format.

    Used by the configuration to refuse a cleartext password or token where a hash belongs.
    Checks the shape only (type, parameters, base64 salt and tag of sane length); it does
    not say which secret the hash is of.
    """
    if not isinstance(value, str):
        return False
    match = _PHC.fullmatch(value)
    if match is None:
        return False
    try:
        params = extract_parameters(value)
    except InvalidHashError:
        return False
    if (
        params.time_cost < 1
        or params.parallelism < 1
        or params.memory_cost < 8 * params.parallelism
    ):
        return False
    salt, tag = match.groups()
    return _decoded_len(salt) >= _MIN_SALT_BYTES and _decoded_len(tag) >= _MIN_HASH_BYTES


def generate_token() -> str:
    """A fresh bearer token: 32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def _decoded_len(b64: str) -> int:
    """Bytes in an unpadded base64 string, or -1 when it is not valid base64."""
    try:
        return len(base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True))
    except (binascii.Error, ValueError):
        return -1
