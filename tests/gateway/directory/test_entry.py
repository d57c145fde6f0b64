"""Decoding raw search results into DirectoryEntry values."""

import logging
import uuid

import pytest

from gateway.directory.entry import decode_entry, guid_text

GUID = uuid.UUID("01234567-89ab-cdef-0123-456789abcdef")


def test_object_guid_becomes_canonical_text() -> None:
    raw = bytes.fromhex("67452301ab89efcd0123456789abcdef")

    assert raw == GUID.bytes_le
    assert guid_text(raw) == "01234567-89ab-cdef-0123-456789abcdef"
    assert guid_text(raw[:15]) is None


def test_ad_entry() -> None:
    entry = decode_entry(
        "CN=Ann,OU=Staff,DC=corp,DC=example",
        {
            "objectGUID": [GUID.bytes_le],
            "sAMAccountName": [b"ann"],
            "memberOf": [b"CN=a,DC=corp", b"CN=b,DC=corp"],
            "displayName": ["Ann Ång".encode()],
        },
        "objectGUID",
        "ad",
    )

    assert entry is not None
    assert entry.external_id == str(GUID)
    assert entry.attributes == {
        "objectguid": (str(GUID),),
        "samaccountname": ("ann",),
        "memberof": ("CN=a,DC=corp", "CN=b,DC=corp"),
        "displayname": ("Ann Ång",),
    }
    assert entry.first("sAMAccountName") == "ann"
    assert entry.first("mail") is None


def test_passwords_are_never_kept() -> None:
    entry = decode_entry(
        "uid=a,dc=org",
        {"entryUUID": [b"u-1"], "userPassword": [b"{SSHA}x"], "unicodePwd": [b"x"]},
        "entryUUID",
        "corp",
    )

    assert entry is not None
    assert set(entry.attributes) == {"entryuuid"}


def test_values_that_are_not_utf8_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    entry = decode_entry(
        "uid=a,dc=org", {"entryUUID": [b"u-1"], "cn": [b"\xff\xfe", b"ok"]}, "entryUUID", "corp"
    )

    assert entry is not None and entry.attributes["cn"] == ("ok",)
    assert "cn" in caplog.text and "corp" in caplog.text


@pytest.mark.parametrize(
    "raw",
    [
        {"uid": [b"a"]},
        {"entryUUID": []},
        {"entryUUID": [b"one", b"two"]},
        {"entryUUID": [b"\xff"]},
    ],
)
def test_an_entry_without_one_id_is_skipped(
    raw: dict[str, list[bytes]], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert decode_entry("uid=a,dc=org", raw, "entryUUID", "corp") is None
    assert "entryUUID" in caplog.text and "uid=a,dc=org" in caplog.text


def test_a_malformed_guid_is_no_id() -> None:
    assert decode_entry("cn=a", {"objectGUID": [b"short"]}, "objectGUID", "ad") is None
