"""Service accounts of the LDAP front (`[[ldap.service_accounts]]`, SPEC §6).

RADIUS servers and SSO agents bind as one of these to search the store. Their passwords are
configured as argon2 hashes only.

A service account is one name that every RADIUS server shares, so its failures must not
refuse its right password: one client guessing from anywhere would otherwise stop every
RADIUS authentication. Failures are counted per (account, client address), in the store
(across gateway processes): an address that used up its failures is refused, every other
address still binds with the right password. `allowed_networks` names where an account may
bind from at all; a bind from elsewhere is refused before its password is looked at. Every
refusal is logged with the client address, and audited until that address reaches its
limit (after that, only logged: a flood must not become a flood of writes).
"""

from collections.abc import Callable, Sequence
from datetime import datetime
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address, ip_address

from gateway.auth.ratelimit import FailureLimiter, Tally
from gateway.auth.secrets import verify_secret
from gateway.config import ServiceAccount
from gateway.users.names import dn_key, dn_parts, parts_key
from store.models import AuditEvent

#: The audit log's actor for what the LDAP front decides on its own.
ACTOR = "ldap"


class ServiceBind(StrEnum):
    """The outcome of a service account's bind."""

    OK = "ok"
    WRONG_PASSWORD = "wrong_password"  # noqa: S105 - an outcome, not a password
    #: The client address is outside the account's `allowed_networks`.
    NETWORK_NOT_ALLOWED = "network_not_allowed"
    #: This address used up its failures within the window.
    RATE_LIMITED = "rate_limited"


def client_address(host: str) -> IPv4Address | IPv6Address | None:
    """The client's IP address, an IPv4-mapped IPv6 address as the IPv4 one; None for a
    transport without one (a UNIX socket, a test transport)."""
    try:
        address = ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class ServiceAccounts:
    def __init__(
        self,
        accounts: Sequence[ServiceAccount],
        limiter: FailureLimiter,
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self._by_key = {dn_key(account.dn): account for account in accounts}
        self._limiter = limiter
        self._clock = clock

    def find(self, name: str) -> ServiceAccount | None:
        """The service account `name` (a DN) names; None for every other name."""
        # Cheap refusals first: this runs before every bind, and most bind names are not DNs.
        if not self._by_key or "=" not in name:
            return None
        parts = dn_parts(name)
        return None if parts is None else self._by_key.get(parts_key(parts))

    def verify(self, account: ServiceAccount, password: str, peer: str) -> ServiceBind:
        """Whether `password` is the account's, from the client at `peer` (an IP address
        as text); blocking (argon2, a store read, a write on failure)."""
        address = client_address(peer)
        where = str(address) if address is not None else peer
        tally = self._limiter.check(f"service:{dn_key(account.dn)}@{where}")
        if account.allowed_networks and not any(
            address is not None and address in network for network in account.allowed_networks
        ):
            return self._refuse(account, where, ServiceBind.NETWORK_NOT_ALLOWED, tally)
        if tally.blocked:
            return ServiceBind.RATE_LIMITED
        # Empty passwords never reach here (RFC 4513 §5.1.2, refused by the front).
        if password and verify_secret(account.password_hash, password):
            self._limiter.succeeded(tally)
            return ServiceBind.OK
        return self._refuse(account, where, ServiceBind.WRONG_PASSWORD, tally)

    def _refuse(
        self, account: ServiceAccount, where: str, outcome: ServiceBind, tally: Tally
    ) -> ServiceBind:
        """Count the refusal and audit it, up to the address's limit; past the limit nothing
        is written (the front still logs every refusal)."""
        if tally.blocked:
            return outcome
        details: dict[str, object] = {
            "account": account.dn,
            "address": where,
            "reason": outcome.value,
        }
        if tally.failures + 1 >= self._limiter.limit:
            details["limit_reached"] = True
        event = AuditEvent(
            at=self._clock(), actor=ACTOR, action="service_account.bind_refused", details=details
        )
        self._limiter.failed(tally.key, audit=event)
        return outcome
