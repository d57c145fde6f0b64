"""ldap3 failures become gateway errors, with safe messages and the cause chained."""

import ssl

import pytest
from ldap3.core.exceptions import (
    LDAPExceptionError,
    LDAPSessionTerminatedByServerError,
    LDAPSocketOpenError,
    LDAPSocketReceiveError,
    LDAPStartTLSError,
    communication_exception_factory,
)
from pyasn1.error import PyAsn1Error

from gateway.directory.errors import Failure, TlsNameMismatch, check_search, classify, translate
from gateway.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable


def merged(kind: type[Exception], cause: Exception) -> Exception:
    """What ldap3 raises: its class merged with the socket/ssl exception it caught."""
    return communication_exception_factory(kind, cause)("ldap3 text")  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("exc", "failure", "error"),
    [
        (merged(LDAPSocketOpenError, ConnectionRefusedError(111, "refused")), Failure.UNREACHABLE,
         UpstreamUnavailable),
        (merged(LDAPSocketOpenError, TimeoutError("timed out")), Failure.NO_ANSWER,
         UpstreamTimeout),
        (merged(LDAPSocketReceiveError, TimeoutError("timed out")), Failure.NO_ANSWER,
         UpstreamTimeout),
        (merged(LDAPSocketOpenError, ssl.SSLCertVerificationError("bad")), Failure.TLS_UNTRUSTED,
         UpstreamUnavailable),
        (merged(LDAPSocketOpenError, TlsNameMismatch("x")), Failure.TLS_NAME, UpstreamUnavailable),
        (LDAPStartTLSError("startTLS failed - protocolError"), Failure.TLS, UpstreamUnavailable),
        (merged(LDAPSocketReceiveError, ConnectionResetError(104, "reset")), Failure.DROPPED,
         UpstreamUnavailable),
        (LDAPSessionTerminatedByServerError("gone"), Failure.DROPPED, UpstreamUnavailable),
        (LDAPExceptionError("something"), Failure.ERROR, UpstreamError),
        (PyAsn1Error("codec"), Failure.ERROR, UpstreamError),
    ],
)  # fmt: skip
def test_translation(exc: Exception, failure: Failure, error: type[UpstreamError]) -> None:
    assert classify(exc) is failure
    translated = translate(exc, "corp", "ldap://dc1", "DN lookup")
    assert type(translated) is error
    assert str(translated) == f"source corp: DN lookup on ldap://dc1 failed: {failure.value}"
    assert "ldap3 text" not in str(translated)


@pytest.mark.parametrize("code", [0, 4, 10, 32])
def test_answers_pass(code: int) -> None:
    check_search(code, "x", "corp", "ldap://dc1", "lookup")


@pytest.mark.parametrize(
    ("code", "description", "error", "text"),
    [
        (3, "timeLimitExceeded", UpstreamTimeout, "timeLimitExceeded"),
        (51, "busy", UpstreamUnavailable, "busy"),
        (52, "unavailable", UpstreamUnavailable, "unavailable"),
        (12, "unavailableCriticalExtension", UpstreamError, "does not support a control"),
        (50, "insufficientAccessRights", UpstreamError, "insufficientAccessRights"),
        (1, "operationsError", UpstreamError, "operationsError"),
    ],
)
def test_failures_raise(code: int, description: str, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        check_search(code, description, "corp", "ldap://dc1", "lookup")
