"""Whether a directory read covered everything it asked for, and what to do when it did not.

A bulk sync concludes "this user is gone" from what a read of the whole scope did *not*
return, so the read must be proven complete: every root answered success on its last page,
every page carried the paged-results control (RFC 2696 §3: the server MUST return it), and
the last cookie was empty. Any other end is a `Shortfall`; `incomplete()` turns it into an
`IncompleteRead` whose message names the source, server and root, what stopped the read, and
what an operator can change, for the kind of directory at hand. Pure: no I/O.
"""

from enum import StrEnum

from gateway.directory.errors import (
    ADMIN_LIMIT_EXCEEDED,
    NO_SUCH_OBJECT,
    PROTOCOL_ERROR,
    REFERRAL,
    SIZE_LIMIT_EXCEEDED,
    TIME_LIMIT_EXCEEDED,
    UNAVAILABLE_CRITICAL_EXTENSION,
    UNWILLING_TO_PERFORM,
)
from gateway.errors import IncompleteRead

__all__ = ["Shortfall", "advice", "incomplete", "shortfall_of"]


class Shortfall(StrEnum):
    """What stopped a read before it covered its scope."""

    SIZE_LIMIT = "a size limit"
    TIME_LIMIT = "a time limit"
    ADMIN_LIMIT = "an administrative limit"
    NO_ROOT = "a root that does not exist"
    REFERRAL = "a root that is a referral"
    REFERRAL_INSIDE = "a referral inside the root"
    PAGING_REFUSED = "paged results refused"
    COOKIE_REFUSED = "a paged-results cookie refused"
    PAGING_IGNORED = "paged results ignored"
    CONNECTION_LOST = "a connection lost between pages"


_BY_CODE = {
    SIZE_LIMIT_EXCEEDED: Shortfall.SIZE_LIMIT,
    TIME_LIMIT_EXCEEDED: Shortfall.TIME_LIMIT,
    ADMIN_LIMIT_EXCEEDED: Shortfall.ADMIN_LIMIT,
    NO_SUCH_OBJECT: Shortfall.NO_ROOT,
    REFERRAL: Shortfall.REFERRAL,
}


def shortfall_of(
    code: int, *, paged: bool, cookie_sent: bool, message: str = ""
) -> Shortfall | None:
    """The shortfall a search result code means, or None for success and for codes that are
    plain failures (busy, unavailable, ...: the caller raises those as they are).

    Args:
        paged: the search carried the paged-results control.
        cookie_sent: it was a follow-up page (it sent a cookie from the previous one).
        message: the directory's diagnostic text; read only to tell OpenLDAP's kinds of
            adminLimitExceeded apart, never shown.
    """
    if paged and code == ADMIN_LIMIT_EXCEEDED and "pagedresults" in message.lower():
        # OpenLDAP: size.prtotal=disabled ("pagedResults control not allowed") or a page
        # larger than size.pr ("illegal pagedResults page size").
        return Shortfall.PAGING_REFUSED
    if code in _BY_CODE:
        return _BY_CODE[code]
    if paged and code == UNAVAILABLE_CRITICAL_EXTENSION:
        return Shortfall.PAGING_REFUSED
    if paged and code in (PROTOCOL_ERROR, UNWILLING_TO_PERFORM):
        # OpenLDAP answers a cookie it no longer knows (or paging its limits forbid) so.
        return Shortfall.COOKIE_REFUSED if cookie_sent else Shortfall.PAGING_REFUSED
    return None


def advice(
    shortfall: Shortfall, *, kind: str, bind_dn: str, timeout_seconds: int, page_size: int = 0
) -> str:
    """What an operator can change so the read completes (for an `ldap` or `ad` source)."""
    ad = kind == "ad"
    if shortfall is Shortfall.SIZE_LIMIT:
        if ad:
            return (
                "raise MaxResultSetSize (and MaxPageSize) in the domain's LDAP query policy"
                " (ntdsutil 'ldap policies'), or narrow the source's roots"
            )
        return (
            "the service account may read fewer entries than the scope holds; give it"
            f' olcLimits: dn.exact="{bind_dn}" size.prtotal=unlimited (for paged searches'
            " slapd applies size.hard unless size.prtotal is set), or narrow the source's roots"
        )
    if shortfall is Shortfall.TIME_LIMIT:
        where = (
            "MaxQueryDuration in the domain's LDAP query policy"
            if ad
            else f'olcLimits: dn.exact="{bind_dn}" time.soft=unlimited time.hard=unlimited'
            " (or olcTimeLimit)"
        )
        return (
            f"raise {where}; each page is also asked with the source's"
            f" operation_timeout_seconds ({timeout_seconds} s), which can be raised too"
        )
    if shortfall is Shortfall.ADMIN_LIMIT:
        if ad:
            return (
                "raise MaxPageSize, MaxResultSetSize or MaxTempTableSize in the domain's LDAP"
                " query policy"
            )
        return (
            "the search examined more candidates than the account may (olcLimits"
            " size.unchecked): index the attributes of the user filter, or give"
            f' dn.exact="{bind_dn}" size.unchecked=unlimited'
        )
    if shortfall is Shortfall.NO_ROOT:
        return "correct the source's roots: this one was mistyped, renamed or deleted"
    if shortfall is Shortfall.REFERRAL_INSIDE:
        return (
            "part of the root lives on another server (a continuation reference), and"
            " referrals are never followed: narrow the source's roots to what this server"
            " holds"
        )
    if shortfall is Shortfall.REFERRAL:
        return (
            "referrals are never followed: point the source's roots at entries this server"
            " holds, or configure the server that holds them as a source of its own"
        )
    if shortfall is Shortfall.PAGING_REFUSED:
        if ad:
            return "the server must allow Simple Paged Results (1.2.840.113556.1.4.319)"
        return (
            "the server must allow Simple Paged Results (1.2.840.113556.1.4.319) to the"
            f" service account at the source's page_size ({page_size}): remove"
            f" size.prtotal=disabled from the olcLimits of {bind_dn}, or make its size.pr at"
            " least page_size (or lower page_size)"
        )
    if shortfall is Shortfall.COOKIE_REFUSED:
        if ad:
            return (
                "the server dropped the paged search between pages: check MaxResultSetSize"
                " and MaxResultSetsPerConn in the LDAP query policy"
            )
        return (
            "the server refused to continue the paged search (a restart, an expired cookie,"
            f' or a limit): give dn.exact="{bind_dn}" size.prtotal=unlimited in olcLimits'
        )
    if shortfall is Shortfall.PAGING_IGNORED:
        return (
            "the server answered without the paged-results control (RFC 2696 §3 requires it),"
            " so a page may have been cut short without a word: it cannot be bulk-synced as it is"
        )
    return "check the server and the network; the next run reads everything again"


def incomplete(
    shortfall: Shortfall,
    *,
    source_id: str,
    url: str,
    root: str,
    entries: int,
    kind: str,
    bind_dn: str,
    timeout_seconds: int,
    page_size: int = 0,
) -> IncompleteRead:
    """The error for a read of `root` on `url` that `shortfall` stopped after `entries`."""
    fix = advice(
        shortfall, kind=kind, bind_dn=bind_dn, timeout_seconds=timeout_seconds, page_size=page_size
    )
    message = (
        f"source {source_id}: the read of root {root} on {url} stopped at {shortfall.value}"
        f" after {entries} entries: {fix}"
    )
    return IncompleteRead(message, root=root, shortfall=shortfall.value, entries=entries)
