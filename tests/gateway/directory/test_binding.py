"""From a bind answer to a BindResult: AD's data codes and OpenLDAP's ppolicy control."""

import pytest

from gateway.directory import BindResult
from gateway.directory.adcodes import ad_bind_result, ad_data_code
from gateway.directory.binding import classify_bind
from gateway.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable


def ad_message(code: str) -> str:
    # What AD (Windows Server 2019) sends with invalidCredentials.
    return (
        f"80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data {code},"
        " v4563\x00"
    )


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("52e", BindResult.INVALID_CREDENTIALS),
        ("525", BindResult.INVALID_CREDENTIALS),
        ("530", BindResult.NOT_PERMITTED),
        ("531", BindResult.NOT_PERMITTED),
        ("532", BindResult.PASSWORD_EXPIRED),
        ("533", BindResult.ACCOUNT_DISABLED),
        ("701", BindResult.ACCOUNT_EXPIRED),
        ("773", BindResult.MUST_CHANGE_PASSWORD),
        ("775", BindResult.ACCOUNT_LOCKED),
        ("52E", BindResult.INVALID_CREDENTIALS),
        ("12345", BindResult.INVALID_CREDENTIALS),  # unknown: never more than a wrong password
    ],
)
def test_ad_data_codes(code: str, expected: BindResult) -> None:
    assert classify_bind("ad", 49, ad_message(code), None) is expected


def test_ad_message_without_a_code_is_invalid_credentials() -> None:
    assert ad_data_code("invalid credentials") is None
    assert ad_bind_result("") is BindResult.INVALID_CREDENTIALS
    assert ad_data_code(ad_message("773")) == 0x773


def test_ad_success_is_ok_whatever_the_message() -> None:
    assert classify_bind("ad", 0, "", None) is BindResult.OK


@pytest.mark.parametrize(
    ("code", "control", "expected"),
    [
        (0, None, BindResult.OK),
        (0, b"\x30\x00", BindResult.OK),
        (0, b"\x30\x06\xa0\x04\x80\x02\x01\x2c", BindResult.OK),  # expires in 300 s: still ok
        (0, b"\x30\x05\xa0\x03\x81\x01\x02", BindResult.PASSWORD_EXPIRED),  # grace login
        (0, b"\x30\x03\x81\x01\x02", BindResult.MUST_CHANGE_PASSWORD),
        (49, None, BindResult.INVALID_CREDENTIALS),
        (49, b"\x30\x03\x81\x01\x00", BindResult.PASSWORD_EXPIRED),
        (49, b"\x30\x03\x81\x01\x01", BindResult.ACCOUNT_LOCKED),
        (49, b"\x30\x03\x81\x01\x02", BindResult.INVALID_CREDENTIALS),
        (49, b"\x30\x05\xa0\x03\x81\x01\x02", BindResult.INVALID_CREDENTIALS),
        (0, b"\x30\x03\x81\x01\x08", BindResult.OK),  # passwordInHistory: a modify error
        (32, None, BindResult.INVALID_CREDENTIALS),
        (34, None, BindResult.INVALID_CREDENTIALS),
        (48, None, BindResult.INVALID_CREDENTIALS),
        (50, None, BindResult.NOT_PERMITTED),
        (53, None, BindResult.NOT_PERMITTED),
    ],
)
def test_ldap_answers(code: int, control: bytes | None, expected: BindResult) -> None:
    assert classify_bind("ldap", code, "ignored", control) is expected


def test_ldap_ignores_ad_data_codes() -> None:
    assert classify_bind("ldap", 49, ad_message("773"), None) is BindResult.INVALID_CREDENTIALS


def test_an_unreadable_control_fails_closed_without_blaming_the_password() -> None:
    with pytest.raises(UpstreamError, match="password policy"):
        classify_bind("ldap", 0, "", b"\x30\x05\x81")


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (51, UpstreamUnavailable),
        (52, UpstreamUnavailable),
        (3, UpstreamTimeout),
        (8, UpstreamError),
        (13, UpstreamError),
        (80, UpstreamError),
        (1, UpstreamError),
    ],
)
@pytest.mark.parametrize("kind", ["ldap", "ad"])
def test_answers_about_the_directory_raise(kind: str, code: int, error: type[Exception]) -> None:
    with pytest.raises(error) as raised:
        classify_bind(kind, code, "secret diagnostic text", None)  # type: ignore[arg-type]
    assert "secret diagnostic text" not in str(raised.value)


def test_password_verified() -> None:
    assert BindResult.ACCOUNT_DISABLED.password_verified
    assert BindResult.MUST_CHANGE_PASSWORD.password_verified
    assert not BindResult.ACCOUNT_LOCKED.password_verified
    assert not BindResult.INVALID_CREDENTIALS.password_verified
