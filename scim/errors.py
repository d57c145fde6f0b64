"""SCIM errors for an outage of the store (RFC 7644 §3.12: an HTTP status and an Error body).

A store that is busy, down or full is not the client's fault and not a bug: the answer is a
5xx the client retries later — 503 Service Unavailable (RFC 9110 §15.6.4) while the database
is locked or unreachable, 507 Insufficient Storage (RFC 4918 §11.5) while its disk is full —
never the 500 "internal error" of an unexpected exception. The detail says which, and never
carries the driver's text (it can name hosts, files or SQL).
"""

from scim2_models import SCIMException

from gateway.outages import Outage, outage_of

__all__ = ["StoreBusy", "StoreFull", "StoreUnavailable", "store_error"]


class StoreBusy(SCIMException):
    status = 503
    _default_detail = "the store is busy; try again shortly"


class StoreUnavailable(SCIMException):
    status = 503
    _default_detail = "the store is unavailable; try again shortly"


class StoreFull(SCIMException):
    status = 507
    _default_detail = "the store is out of space; nothing was written"


_ERRORS: dict[Outage, type[SCIMException]] = {
    Outage.BUSY: StoreBusy,
    Outage.UNAVAILABLE: StoreUnavailable,
    Outage.FULL: StoreFull,
}


def store_error(error: BaseException) -> SCIMException | None:
    """The SCIM error for a store outage, or None when `error` is not one."""
    outage = outage_of(error)
    return None if outage is None else _ERRORS[outage]()
