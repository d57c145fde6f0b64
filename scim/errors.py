"""The HTTP front's answer to an outage of the store: one table for the SCIM and admin APIs.

A store that is busy, down or full is not the client's fault and not a bug: the answer is a
5xx the client retries later — 503 Service Unavailable (RFC 9110 §15.6.4) while the database
is locked or unreachable, 507 Insufficient Storage (RFC 4918 §11.5) while its disk is full —
never the 500 "internal error" of an unexpected exception. The detail says which, and never
carries the driver's text (it can name hosts, files or SQL).

`store_error` renders the answer as a SCIM Error (RFC 7644 §3.12); the admin API renders the
same answer with its error code (`scim.admin.errors.outage_error`, docs/admin-api.md).
"""

from dataclasses import dataclass

from scim2_models import SCIMException

from gateway.outages import Outage, outage_of


@dataclass(frozen=True)
class OutageAnswer:
    status: int
    #: The admin API's error code (docs/admin-api.md, "Errors"); SCIM has no scimType for it.
    code: str
    detail: str


OUTAGES: dict[Outage, OutageAnswer] = {
    Outage.BUSY: OutageAnswer(503, "store_busy", "the store is busy; try again shortly"),
    Outage.UNAVAILABLE: OutageAnswer(
        503, "store_unavailable", "the store is unavailable; try again shortly"
    ),
    Outage.FULL: OutageAnswer(507, "store_full", "the store is out of space; nothing was written"),
}


def outage_answer(error: BaseException) -> OutageAnswer | None:
    """The answer to a store outage, or None when `error` is not one (then it is a bug)."""
    outage = outage_of(error)
    return None if outage is None else OUTAGES[outage]


class StoreOutage(SCIMException):
    """A store outage as a SCIM Error: its status, and no scimType (RFC 7644 §3.12 has none
    for a server that cannot answer now)."""

    def __init__(self, answer: OutageAnswer) -> None:
        super().__init__(detail=answer.detail)
        self.status = answer.status


def store_error(error: BaseException) -> SCIMException | None:
    """The SCIM error for a store outage, or None when `error` is not one."""
    answer = outage_answer(error)
    return None if answer is None else StoreOutage(answer)
