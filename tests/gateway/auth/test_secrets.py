"""gateway.auth.secrets: argon2id hashes, their verification and shape, and token generation."""

import re

import pytest
from argon2 import PasswordHasher, Type

from gateway.auth.secrets import (
    generate_token,
    hash_secret,
    is_argon2_hash,
    needs_rehash,
    verify_secret,
)

SECRET = "correct horse battery staple"


@pytest.fixture(scope="module")
def stored() -> str:
    """One hash for the module: argon2 is slow on purpose."""
    return hash_secret(SECRET)


@pytest.fixture(scope="module")
def weak() -> str:
    """A valid argon2i hash with weaker-than-default parameters."""
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, type=Type.I).hash(SECRET)


def test_hash_is_argon2id_in_phc_format(stored: str) -> None:
    assert stored.startswith("$argon2id$v=19$")
    assert SECRET not in stored


def test_hashes_are_salted(stored: str) -> None:
    assert hash_secret(SECRET) != stored


def test_verify_accepts_the_secret(stored: str) -> None:
    assert verify_secret(stored, SECRET) is True


@pytest.mark.parametrize("attempt", ["correct horse battery stapl", SECRET.upper(), " " + SECRET])
def test_verify_refuses_another_secret(stored: str, attempt: str) -> None:
    assert verify_secret(stored, attempt) is False


def test_verify_refuses_an_empty_secret() -> None:
    # Even against a hash of "", which hash_secret would never make.
    empty_hash = PasswordHasher().hash("")
    assert verify_secret(empty_hash, "") is False


def test_hashing_an_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        hash_secret("")


@pytest.mark.parametrize(
    "malformed",
    [
        "",
        "not a hash",
        SECRET,
        "$argon2id$",
        "$argon2id$v=19$m=65536,t=3,p=4$abc$def",
        "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",  # bcrypt
    ],
)
def test_verify_returns_false_on_a_malformed_hash(malformed: str) -> None:
    assert verify_secret(malformed, SECRET) is False


def test_verify_returns_false_on_a_truncated_hash(stored: str) -> None:
    assert verify_secret(stored[:-6], SECRET) is False


def test_verify_returns_false_on_non_strings(stored: str) -> None:
    assert verify_secret(None, SECRET) is False  # type: ignore[arg-type]
    assert verify_secret(stored, None) is False  # type: ignore[arg-type]
    assert verify_secret(stored.encode(), SECRET) is False  # type: ignore[arg-type]


def test_verify_accepts_other_argon2_variants(weak: str) -> None:
    assert verify_secret(weak, SECRET) is True


def test_is_argon2_hash_accepts_real_hashes(stored: str, weak: str) -> None:
    assert is_argon2_hash(stored) is True
    assert is_argon2_hash(weak) is True


@pytest.mark.parametrize(
    "value",
    [
        None,
        42,
        b"$argon2id$",
        "",
        "hunter2",
        "$argon2id$...",
        "$argon2x$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",  # unknown variant
        "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaGhhc2hoYXNo",  # 4-byte salt
        "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGE",  # 2-byte tag
        "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNob",  # not base64 (len%4==1)
        "$argon2id$v=19$m=65536,t=3$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",  # no parallelism
        "$argon2id$v=19$m=65536,t=0,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",  # zero passes
        "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo$",  # trailing part
        " $argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
    ],
)
def test_is_argon2_hash_refuses_anything_else(value: object) -> None:
    assert is_argon2_hash(value) is False


def test_is_argon2_hash_accepts_a_minimal_well_formed_hash() -> None:
    # The counterpart of the refusals above: the same shape with sane lengths passes.
    assert is_argon2_hash("$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo")


def test_needs_rehash(stored: str, weak: str) -> None:
    assert needs_rehash(stored) is False
    assert needs_rehash(weak) is True
    assert needs_rehash("hunter2") is True


def test_generate_token_is_32_random_bytes_urlsafe() -> None:
    tokens = {generate_token() for _ in range(50)}
    assert len(tokens) == 50
    for token in tokens:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)
