"""Bearer tokens of the HTTP front: one per SCIM source, one per administrator (SPEC §7).

Tokens are configured as argon2 hashes only. Verifying one costs tens of milliseconds of CPU
by design, so a token that verified once is remembered by its SHA-256 digest (never in
clear) for the life of the process, with the one principal it verified for: a source's token
is checked against that source's hash alone, so it can never open another source or the admin
view, whatever the cache holds.

A token that failed is remembered too (by digest, for the principal it failed for), so a
client retrying a wrong token costs one argon2 run, not one per request; new wrong tokens
still cost one each (a rate limit in front of the gateway bounds those).

Blocking: `verify_*` may run argon2; callers on an event loop run them in a thread.
"""

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.auth.secrets import verify_secret
from gateway.config import Config
from gateway.config.sources import EntraSource, ScimSource
from gateway.engine.types import Role
from gateway.users.service import Actor

#: Enough for every configured token, and a bound on what wrong tokens could never fill.
_CACHE_LIMIT = 4096


@dataclass(frozen=True)
class _Admin:
    name: str
    role: Role
    token_hash: str


class BearerTokens:
    def __init__(self, config: Config) -> None:
        self._sources: Mapping[str, str] = {
            s.id: s.token_hash
            for s in config.sources
            if isinstance(s, ScimSource | EntraSource) and s.enabled
        }
        self._admins = tuple(_Admin(a.name, a.role, a.token_hash) for a in config.admins)
        self._verified: dict[bytes, str] = {}
        #: (digest, what it was tried for) of tokens that failed: "source:<id>" or "admin".
        self._refused: OrderedDict[tuple[bytes, str], None] = OrderedDict()
        self._lock = threading.Lock()

    def verify_source(self, source_id: str, token: str) -> bool:
        """Whether `token` is the bearer token of this source."""
        expected = self._sources.get(source_id)
        if expected is None or not token:
            return False
        principal = f"source:{source_id}"
        if self._cached(token) == principal:
            return True
        if self._was_refused(token, principal) or not verify_secret(expected, token):
            self._refuse(token, principal)
            return False
        self._remember(token, principal)
        return True

    def verify_admin(self, token: str) -> Actor | None:
        """The administrator whose token this is, or None."""
        if not token:
            return None
        if (known := self.known_admin(token)) is not None:
            return known
        if self._was_refused(token, "admin"):
            return None
        for admin in self._admins:
            if verify_secret(admin.token_hash, token):
                self._remember(token, f"admin:{admin.name}")
                return Actor(admin.name, admin.role)
        self._refuse(token, "admin")
        return None

    def known(self, token: str) -> str | None:
        """The principal ("source:<id>" or "admin:<name>") of a token verified before, or None.
        Never runs argon2: safe on an event loop."""
        return self._cached(token) if token else None

    def known_admin(self, token: str) -> Actor | None:
        """The administrator of a token verified before, or None (no argon2)."""
        principal = self.known(token)
        for admin in self._admins:
            if principal == f"admin:{admin.name}":
                return Actor(admin.name, admin.role)
        return None

    def _cached(self, token: str) -> str | None:
        with self._lock:
            return self._verified.get(_digest(token))

    def _remember(self, token: str, principal: str) -> None:
        with self._lock:
            if len(self._verified) >= _CACHE_LIMIT:
                self._verified.clear()
            self._verified[_digest(token)] = principal

    def _was_refused(self, token: str, scope: str) -> bool:
        with self._lock:
            return (_digest(token), scope) in self._refused

    def _refuse(self, token: str, scope: str) -> None:
        with self._lock:
            self._refused[(_digest(token), scope)] = None
            while len(self._refused) > _CACHE_LIMIT:
                self._refused.popitem(last=False)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
