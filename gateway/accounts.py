"""Service accounts of the LDAP front (`[[ldap.service_accounts]]`, SPEC §6).

RADIUS servers and SSO agents bind as one of these to search the store. Their passwords are
configured as argon2 hashes only; failures count against the same kind of limit as users'.
"""

from collections.abc import Sequence

from gateway.config import ServiceAccount
from gateway.failures import FailureLimiter
from gateway.names import dn_key, dn_parts
from gateway.secrets import verify_secret


class ServiceAccounts:
    def __init__(self, accounts: Sequence[ServiceAccount], limiter: FailureLimiter) -> None:
        self._by_key = {dn_key(account.dn): account for account in accounts}
        self._limiter = limiter

    def find(self, name: str) -> ServiceAccount | None:
        """The service account `name` (a DN) names; None for every other name."""
        # Cheap refusals first: this runs before every bind, and most bind names are not DNs.
        if not self._by_key or "=" not in name or dn_parts(name) is None:
            return None
        return self._by_key.get(dn_key(name))

    def verify(self, account: ServiceAccount, password: str) -> bool:
        """Whether `password` is the account's; blocking (argon2). Empty passwords never are."""
        key = f"service:{dn_key(account.dn)}"
        if not password or self._limiter.blocked(key):
            return False
        if verify_secret(account.password_hash, password):
            self._limiter.succeeded(key)
            return True
        self._limiter.failed(key)
        return False
