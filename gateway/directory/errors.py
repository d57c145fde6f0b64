"""ldap3's exceptions become the gateway's, here and nowhere else (STYLE habit 6).

    LDAPException (ldap3), OSError, PyAsn1Error    → gateway.errors
    ├── a read on a socket timed out               → UpstreamTimeout
    ├── socket open / send / receive, StartTLS,    → UpstreamUnavailable
    │   TLS handshake, session terminated
    └── anything else                              → UpstreamError

`IncompleteEntry` (an UpstreamError) is this package's own: an entry lacks what the gateway
needs. Messages name the source, the server URL and a category, never the exception text of
ldap3 or the directory's diagnostic message; the original stays chained as ``__cause__``.
"""

import ssl
from enum import StrEnum

from ldap3.core.exceptions import (
    LDAPCommunicationError,
    LDAPException,
    LDAPSocketOpenError,
    LDAPStartTLSError,
)
from pyasn1.error import PyAsn1Error  # type: ignore[import-untyped]  # ldap3's BER codec

from gateway.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable

#: What ldap3 raises: its own exceptions, socket and ssl errors, and its BER codec's errors.
LIBRARY_ERRORS: tuple[type[Exception], ...] = (LDAPException, OSError, PyAsn1Error)

__all__ = [
    "ANSWERS",
    "LIBRARY_ERRORS",
    "Failure",
    "IncompleteEntry",
    "TlsNameMismatch",
    "check_search",
    "classify",
    "translate",
    "upstream_error",
]


class IncompleteEntry(UpstreamError):
    """A directory entry lacks a value the gateway cannot do without (e.g. the user name)."""


class TlsNameMismatch(ssl.SSLCertVerificationError):
    """The server's certificate is trusted but names none of the expected hosts."""


class Failure(StrEnum):
    """Why talking to one server failed, in words fit for an operator."""

    UNREACHABLE = "unreachable"
    NO_ANSWER = "no answer in time"
    TLS_UNTRUSTED = "TLS certificate not trusted"
    TLS_NAME = "TLS certificate names another host"
    TLS = "TLS negotiation failed"
    DROPPED = "connection dropped"
    ERROR = "client error"

    @property
    def is_tls(self) -> bool:
        return self in (Failure.TLS_UNTRUSTED, Failure.TLS_NAME, Failure.TLS)


def classify(exc: BaseException) -> Failure:
    """The category of an ldap3 (or socket) failure.

    ldap3 merges the socket or ssl exception it caught into the class it raises, so
    ``isinstance`` sees both (``ldap3.core.exceptions.communication_exception_factory``).
    """
    if isinstance(exc, TlsNameMismatch):
        return Failure.TLS_NAME
    if isinstance(exc, ssl.SSLCertVerificationError):
        return Failure.TLS_UNTRUSTED
    if isinstance(exc, LDAPStartTLSError | ssl.SSLError):
        return Failure.TLS
    if isinstance(exc, TimeoutError):
        return Failure.NO_ANSWER
    if isinstance(exc, LDAPSocketOpenError):
        return Failure.UNREACHABLE
    if isinstance(exc, LDAPCommunicationError | ConnectionError):
        return Failure.DROPPED
    return Failure.ERROR


def translate(exc: Exception, source_id: str, url: str, what: str) -> UpstreamError:
    """The gateway error for an ldap3 failure during `what` on `url`; raise it ``from exc``."""
    return upstream_error(classify(exc), source_id, url, what)


def upstream_error(failure: Failure, source_id: str, url: str, what: str) -> UpstreamError:
    """The gateway error for a `failure` during `what` on `url`, whichever client met it."""
    message = f"source {source_id}: {what} on {url} failed: {failure.value}"
    if failure is Failure.NO_ANSWER:
        return UpstreamTimeout(message)
    if failure is Failure.ERROR:
        return UpstreamError(message)
    return UpstreamUnavailable(message)


# RFC 4511 §4.1.9 result codes a search may end with.
SUCCESS = 0
PROTOCOL_ERROR = 2
TIME_LIMIT_EXCEEDED = 3
SIZE_LIMIT_EXCEEDED = 4
REFERRAL = 10
ADMIN_LIMIT_EXCEEDED = 11
UNAVAILABLE_CRITICAL_EXTENSION = 12
NO_SUCH_OBJECT = 32
INVALID_DN_SYNTAX = 34
BUSY = 51
UNAVAILABLE = 52
UNWILLING_TO_PERFORM = 53

#: Ends of a search that carry an answer (possibly "nothing here") rather than a failure.
#: A referral is such an answer too: referrals are never chased (SPEC §2). Reads that must
#: prove a user gone judge these codes themselves (`gateway.directory.completeness`).
ANSWERS = frozenset({SUCCESS, SIZE_LIMIT_EXCEEDED, REFERRAL, NO_SUCH_OBJECT})


def check_search(code: int, description: str, source_id: str, url: str, what: str) -> None:
    """Raise the gateway error for a search that ended without an answer.

    The message carries the result code's name (e.g. ``busy``), never the directory's text.

    Raises:
        UpstreamTimeout: timeLimitExceeded.
        UpstreamUnavailable: busy or unavailable.
        UpstreamError: any other code outside `ANSWERS`; for unavailableCriticalExtension,
            saying that the server does not support the control (paged results).
    """
    if code in ANSWERS:
        return
    message = f"source {source_id}: {what} on {url} failed: {description} ({code})"
    if code == TIME_LIMIT_EXCEEDED:
        raise UpstreamTimeout(message)
    if code in (BUSY, UNAVAILABLE):
        raise UpstreamUnavailable(message)
    if code == UNAVAILABLE_CRITICAL_EXTENSION:
        raise UpstreamError(f"{message}: the server does not support a control the search needs")
    raise UpstreamError(message)
