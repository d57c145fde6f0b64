"""The ppolicy response control decoder, on known encodings (draft-behera-ldap-password-policy)."""

import pytest

from gateway.directory.ppolicy import MalformedControl, PolicyError, PolicyResponse, decode_ppolicy


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"\x30\x00", PolicyResponse()),
        (b"\x30\x03\x81\x01\x00", PolicyResponse(error=PolicyError.PASSWORD_EXPIRED)),
        (b"\x30\x03\x81\x01\x01", PolicyResponse(error=PolicyError.ACCOUNT_LOCKED)),
        (b"\x30\x03\x81\x01\x02", PolicyResponse(error=PolicyError.CHANGE_AFTER_RESET)),
        (b"\x30\x06\xa0\x04\x80\x02\x01\x2c", PolicyResponse(time_before_expiration=300)),
        (b"\x30\x05\xa0\x03\x81\x01\x02", PolicyResponse(grace_authns_remaining=2)),
        (
            b"\x30\x08\xa0\x03\x81\x01\x00\x81\x01\x00",
            PolicyResponse(grace_authns_remaining=0, error=PolicyError.PASSWORD_EXPIRED),
        ),
        # Long-form lengths are legal BER.
        (b"\x30\x81\x04\x81\x81\x01\x01", PolicyResponse(error=PolicyError.ACCOUNT_LOCKED)),
        # An error code this decoder does not know is kept as a number.
        (b"\x30\x03\x81\x01\x2a", PolicyResponse(error=42)),
    ],
)
def test_known_encodings(value: bytes, expected: PolicyResponse) -> None:
    assert decode_ppolicy(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"\x30",
        b"\x31\x00",  # a SET
        b"\x30\x05\x81\x01\x02",  # length beyond the data
        b"\x30\x03\x81\x01\x02\x00",  # trailing octet
        b"\x30\x80\x81\x01\x02\x00\x00",  # indefinite length
        b"\x30\x03\x82\x01\x02",  # unknown element
        b"\x30\x06\x81\x01\x02\x81\x01\x01",  # error twice
        b"\x30\x02\x81\x00",  # empty integer
        b"\x30\x05\xa0\x03\x82\x01\x02",  # unknown warning choice
    ],
)
def test_malformed_values_are_refused(value: bytes) -> None:
    with pytest.raises(MalformedControl):
        decode_ppolicy(value)
