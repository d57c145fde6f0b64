"""SPEC §4.3: from a directory entry's attributes to the status its source reports."""

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest

from gateway.engine.statusmap import (
    AD_STATUS_MAPPING,
    AdAccountFlags,
    ExpirationFormat,
    MalformedStatusAttribute,
    StatusMapping,
    ad_account_flags,
    days_to_datetime,
    filetime_to_datetime,
    parse_generalized_time,
    source_status,
)
from gateway.engine.types import SourceStatus

ENABLED, DISABLED, EXPIRED = SourceStatus.ENABLED, SourceStatus.DISABLED, SourceStatus.EXPIRED
NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)

# 2026-03-15 12:00:00 UTC as FILETIME: seconds between 1601 and 1970, plus the Unix time.
_EPOCH_DIFF = 11_644_473_600
NOW_FILETIME = (_EPOCH_DIFF + int(NOW.timestamp())) * 10_000_000
NOW_DAY = (NOW.date() - datetime(1970, 1, 1).date()).days  # shadowExpire of today

NS_ACCOUNT_LOCK = StatusMapping(disabled_attribute="nsAccountLock", disabled_values=("TRUE",))
PWD_LOCKED = StatusMapping(disabled_attribute="pwdAccountLockedTime")
SHADOW = StatusMapping(expiration_attribute="shadowExpire", expiration_format=ExpirationFormat.DAYS)
GENERALIZED = StatusMapping(
    expiration_attribute="passwordExpirationTime",
    expiration_format=ExpirationFormat.GENERALIZED_TIME,
)
FILETIME = StatusMapping(
    expiration_attribute="accountExpires", expiration_format=ExpirationFormat.FILETIME
)
BOTH = StatusMapping(
    disabled_attribute="loginDisabled",
    disabled_values=("TRUE",),
    expiration_attribute="loginExpirationTime",
    expiration_format=ExpirationFormat.GENERALIZED_TIME,
)
# Digits that str.isdigit() and int() accept but an LDAP integer or time never contains.
FULLWIDTH_TIME = "".join(chr(0xFF10 + int(c)) for c in "20251231235959") + "Z"
ARABIC_INDIC_512 = "".join(chr(0x0660 + int(c)) for c in "512")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# --- no mapping, one mapping, both ------------------------------------------------------------


def test_no_attribute_mapped_means_enabled_whatever_the_entry_holds():
    entry = {"nsAccountLock": ["TRUE"], "shadowExpire": ["0"], "userAccountControl": ["514"]}
    assert source_status(entry, StatusMapping(), NOW) is ENABLED


def test_only_disabled_attribute_mapped_decides_alone():
    # shadowExpire says expired, but it is not mapped: only nsAccountLock counts.
    assert source_status({"shadowExpire": ["0"]}, NS_ACCOUNT_LOCK, NOW) is ENABLED
    assert source_status({"nsAccountLock": ["TRUE"]}, NS_ACCOUNT_LOCK, NOW) is DISABLED


def test_only_expiration_attribute_mapped_decides_alone():
    entry = {"nsAccountLock": ["TRUE"], "shadowExpire": [str(NOW_DAY + 10)]}
    assert source_status(entry, SHADOW, NOW) is ENABLED
    assert source_status({"shadowExpire": [str(NOW_DAY - 1)]}, SHADOW, NOW) is EXPIRED


def test_disabled_wins_over_expired_when_both_apply():
    entry = {"loginDisabled": ["TRUE"], "loginExpirationTime": ["20200101000000Z"]}
    assert source_status(entry, BOTH, NOW) is DISABLED


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({}, ENABLED),
        ({"loginDisabled": ["FALSE"], "loginExpirationTime": ["20990101000000Z"]}, ENABLED),
        ({"loginDisabled": ["TRUE"], "loginExpirationTime": ["20990101000000Z"]}, DISABLED),
        ({"loginDisabled": ["FALSE"], "loginExpirationTime": ["20200101000000Z"]}, EXPIRED),
        ({"loginExpirationTime": ["20200101000000Z"]}, EXPIRED),
        ({"loginDisabled": ["TRUE"]}, DISABLED),
    ],
)
def test_both_attributes_mapped(entry, expected):
    assert source_status(entry, BOTH, NOW) is expected


def test_disabled_entry_does_not_read_the_expiration_value():
    # The answer is DISABLED whatever the expiration says, so a bad value there cannot matter.
    entry = {"loginDisabled": ["TRUE"], "loginExpirationTime": ["garbage"]}
    assert source_status(entry, BOTH, NOW) is DISABLED


def test_source_status_is_never_missing():
    # A found entry is not missing; MISSING is the connector's verdict for an entry not found.
    for mapping in (StatusMapping(), NS_ACCOUNT_LOCK, SHADOW, AD_STATUS_MAPPING, BOTH):
        assert source_status({}, mapping, NOW) is ENABLED


# --- attribute names and values ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["nsaccountlock", "NSACCOUNTLOCK", "NsAccountLock"])
def test_attribute_names_match_case_insensitively(name):
    assert source_status({name: ["TRUE"]}, NS_ACCOUNT_LOCK, NOW) is DISABLED


def test_mapping_names_match_entry_names_case_insensitively():
    mapping = StatusMapping(
        expiration_attribute="SHADOWEXPIRE", expiration_format=ExpirationFormat.DAYS
    )
    assert source_status({"shadowExpire": ["0"]}, mapping, NOW) is EXPIRED


def test_empty_value_list_is_an_absent_attribute():
    # ldap3 returns requested attributes that the entry lacks as [].
    assert source_status({"pwdAccountLockedTime": []}, PWD_LOCKED, NOW) is ENABLED
    assert source_status({"accountExpires": []}, AD_STATUS_MAPPING, NOW) is ENABLED


def test_a_single_string_is_read_as_one_value():
    # A str is a Sequence[str]: it must not be read as its characters ("T", "R", ...).
    mapping = StatusMapping(disabled_attribute="flag", disabled_values=("T",))
    assert source_status({"flag": "TRUE"}, mapping, NOW) is ENABLED
    assert source_status({"nsAccountLock": "TRUE"}, NS_ACCOUNT_LOCK, NOW) is DISABLED


# --- disabled attribute: values, presence, bitmask --------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["TRUE"], DISABLED),
        (["true"], DISABLED),
        (["True"], DISABLED),
        ([" TRUE "], DISABLED),
        (["FALSE"], ENABLED),
        (["false"], ENABLED),
        (["yes"], ENABLED),
        (["FALSE", "TRUE"], DISABLED),
    ],
)
def test_disabled_values_compare_case_insensitively(values, expected):
    assert source_status({"nsAccountLock": values}, NS_ACCOUNT_LOCK, NOW) is expected


def test_any_of_several_disabled_values_disables():
    mapping = StatusMapping(disabled_attribute="status", disabled_values=("locked", "Suspended"))
    assert source_status({"status": ["SUSPENDED"]}, mapping, NOW) is DISABLED
    assert source_status({"status": ["Locked"]}, mapping, NOW) is DISABLED
    assert source_status({"status": ["active"]}, mapping, NOW) is ENABLED


def test_disabled_attribute_absent_means_enabled():
    assert source_status({"cn": ["alice"]}, NS_ACCOUNT_LOCK, NOW) is ENABLED


@pytest.mark.parametrize("value", ["20260101000000Z", "000001010000Z", "anything"])
def test_presence_only_disabled_attribute_disables_whatever_the_value(value):
    assert source_status({"pwdAccountLockedTime": [value]}, PWD_LOCKED, NOW) is DISABLED


def test_presence_only_disabled_attribute_absent_means_enabled():
    assert source_status({"uid": ["alice"]}, PWD_LOCKED, NOW) is ENABLED


def test_blank_values_do_not_count_as_presence():
    assert source_status({"pwdAccountLockedTime": ["", "  "]}, PWD_LOCKED, NOW) is ENABLED


@pytest.mark.parametrize(
    ("uac", "expected"),
    [
        ("512", ENABLED),  # NORMAL_ACCOUNT
        ("514", DISABLED),  # NORMAL_ACCOUNT | ACCOUNTDISABLE
        ("2", DISABLED),
        ("66048", ENABLED),  # NORMAL_ACCOUNT | DONT_EXPIRE_PASSWORD
        ("66050", DISABLED),  # ... | ACCOUNTDISABLE
        ("528", ENABLED),  # NORMAL_ACCOUNT | LOCKOUT: lockout is not "disabled"
        ("8389120", ENABLED),  # NORMAL_ACCOUNT | PASSWORD_EXPIRED: not "disabled" either
        ("4260352", ENABLED),  # NORMAL_ACCOUNT | DONT_EXPIRE_PASSWORD | DONT_REQ_PREAUTH
        ("4260354", DISABLED),
        ("0", ENABLED),
    ],
)
def test_ad_account_disable_bit(uac, expected):
    assert source_status({"userAccountControl": [uac]}, AD_STATUS_MAPPING, NOW) is expected


@pytest.mark.parametrize(
    ("uac", "expected"),
    [
        ("-2147483646", DISABLED),  # 0x80000002: high bit and ACCOUNTDISABLE
        ("-2147483136", ENABLED),  # 0x80000200: high bit and NORMAL_ACCOUNT
        ("-2147483648", ENABLED),  # 0x80000000
        ("-1", DISABLED),  # every bit set
        ("-3", ENABLED),  # 0xFFFFFFFD: every bit but ACCOUNTDISABLE
    ],
)
def test_ad_negative_user_account_control_is_read_as_two_complement(uac, expected):
    # userAccountControl is a signed 32-bit INTEGER: values with the high bit set are negative.
    assert source_status({"userAccountControl": [uac]}, AD_STATUS_MAPPING, NOW) is expected


def test_ad_user_account_control_name_is_case_insensitive():
    entry = {"useraccountcontrol": ["514"]}
    assert source_status(entry, AD_STATUS_MAPPING, NOW) is DISABLED


def test_custom_bitmask_on_another_flag_attribute():
    mapping = StatusMapping(disabled_attribute="accountFlags", disabled_bitmask=0x40)
    assert source_status({"accountFlags": ["65"]}, mapping, NOW) is DISABLED
    assert source_status({"accountFlags": ["63"]}, mapping, NOW) is ENABLED


def test_ad_mapping_is_overridable():
    mapping = dataclasses.replace(
        AD_STATUS_MAPPING, expiration_attribute=None, expiration_format=None
    )
    entry = {"userAccountControl": ["512"], "accountExpires": ["1"]}
    assert source_status(entry, AD_STATUS_MAPPING, NOW) is EXPIRED
    assert source_status(entry, mapping, NOW) is ENABLED


# --- expiration: FILETIME ---------------------------------------------------------------------


def test_ad_mapping_reads_user_account_control_and_account_expires():
    expected = StatusMapping(
        disabled_attribute="userAccountControl",
        disabled_bitmask=0x2,
        expiration_attribute="accountExpires",
        expiration_format=ExpirationFormat.FILETIME,
    )
    assert expected == AD_STATUS_MAPPING


@pytest.mark.parametrize("value", ["0", "9223372036854775807"])
def test_filetime_never_values_do_not_expire(value):
    entry = {"userAccountControl": ["512"], "accountExpires": [value]}
    assert source_status(entry, AD_STATUS_MAPPING, NOW) is ENABLED


@pytest.mark.parametrize("value", [0, 0x7FFFFFFFFFFFFFFF])
def test_filetime_never_values_convert_to_none(value):
    assert filetime_to_datetime(value) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, utc(1601, 1, 1)),  # 100 ns, truncated to the microsecond
        (10, utc(1601, 1, 1, 0, 0, 0, 1)),
        (116_444_736_000_000_000, utc(1970, 1, 1)),
        (NOW_FILETIME, NOW),
        (133_801_632_000_000_000, utc(2025, 1, 1)),
    ],
)
def test_filetime_to_datetime(value, expected):
    assert filetime_to_datetime(value) == expected


def test_filetime_beyond_year_9999_never_expires():
    assert filetime_to_datetime(0x7FFFFFFFFFFFFFFE) is None


@pytest.mark.parametrize("value", [-1, 0x8000000000000000])
def test_filetime_out_of_range_is_rejected(value):
    with pytest.raises(ValueError, match="FILETIME out of range"):
        filetime_to_datetime(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (NOW_FILETIME - 10_000_000, EXPIRED),  # a second ago
        (NOW_FILETIME, EXPIRED),  # exactly now: expired
        (NOW_FILETIME + 10, ENABLED),  # a microsecond from now
        (NOW_FILETIME + 864_000_000_000, ENABLED),  # tomorrow
    ],
)
def test_ad_account_expires(value, expected):
    entry = {"userAccountControl": ["512"], "accountExpires": [str(value)]}
    assert source_status(entry, AD_STATUS_MAPPING, NOW) is expected


def test_filetime_format_on_an_ldap_source():
    assert source_status({"accountExpires": [str(NOW_FILETIME)]}, FILETIME, NOW) is EXPIRED


# --- expiration: days since epoch (shadowExpire) ----------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("-1", ENABLED),  # chage -E -1: never
        ("", ENABLED),  # blank: never
        ("0", EXPIRED),  # chage -E 0: locked
        ("1", EXPIRED),
        (str(NOW_DAY - 1), EXPIRED),  # yesterday
        (str(NOW_DAY), EXPIRED),  # today: expired since 00:00 UTC
        (str(NOW_DAY + 1), ENABLED),  # tomorrow
        ("40000", ENABLED),
    ],
)
def test_shadow_expire(value, expected):
    assert source_status({"shadowExpire": [value]}, SHADOW, NOW) is expected


def test_shadow_expire_absent_means_enabled():
    assert source_status({"uid": ["alice"]}, SHADOW, NOW) is ENABLED


def test_shadow_expire_takes_effect_at_the_start_of_the_day_utc():
    start_of_day = utc(2026, 3, 15)
    entry = {"shadowExpire": [str(NOW_DAY)]}
    assert source_status(entry, SHADOW, start_of_day - timedelta(microseconds=1)) is ENABLED
    assert source_status(entry, SHADOW, start_of_day) is EXPIRED


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (-1, None),
        (0, utc(1970, 1, 1)),
        (20527, utc(2026, 3, 15)),
        (10_000_000, None),  # after the year 9999
    ],
)
def test_days_to_datetime(value, expected):
    assert days_to_datetime(value) == expected


def test_days_below_minus_one_are_rejected():
    with pytest.raises(ValueError, match="below -1"):
        days_to_datetime(-2)


# --- expiration: generalized time -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20251231235959Z", utc(2025, 12, 31, 23, 59, 59)),
        ("20251231235959.5Z", utc(2025, 12, 31, 23, 59, 59, 500_000)),
        ("20251231235959,25Z", utc(2025, 12, 31, 23, 59, 59, 250_000)),
        ("20251231235959.123456789Z", utc(2025, 12, 31, 23, 59, 59, 123_456)),
        ("202512312359Z", utc(2025, 12, 31, 23, 59)),
        ("202512312359.5Z", utc(2025, 12, 31, 23, 59, 30)),  # half a minute
        ("2025123123Z", utc(2025, 12, 31, 23)),
        ("2025123123.5Z", utc(2025, 12, 31, 23, 30)),  # half an hour
        ("2025123123,25Z", utc(2025, 12, 31, 23, 15)),
        ("20251231235959+0100", utc(2025, 12, 31, 22, 59, 59)),
        ("20251231235959-0530", utc(2026, 1, 1, 5, 29, 59)),
        ("20251231235959+01", utc(2025, 12, 31, 22, 59, 59)),
        ("2025123123.5-0530", utc(2026, 1, 1, 5)),
        ("20260101003000+0100", utc(2025, 12, 31, 23, 30)),
        ("20161231235960Z", utc(2017, 1, 1)),  # a leap second
        ("00010101000000Z", utc(1, 1, 1)),
        ("99991231235959Z", utc(9999, 12, 31, 23, 59, 59)),
    ],
)
def test_parse_generalized_time(value, expected):
    parsed = parse_generalized_time(value)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "value",
    [
        "",
        "20251231235959",  # no time zone: mandatory in RFC 4517
        "2025-12-31T23:59:59Z",  # ISO 8601 is not generalized time
        "20251231Z",  # the hour is mandatory
        "202512312Z",
        "20251231235959.Z",  # a fraction needs digits
        "20251231235959+1",
        "20251231235959+010",
        "20251231235959 Z",
        "20251331000000Z",  # month 13
        "20250230000000Z",  # 30 February
        "20251231240000Z",  # hour 24
        "20251231236000Z",  # minute 60
        "20251231235961Z",
        "00000101000000Z",  # year 0
        "20251231235959+2400",
        "20251231235959+0160",
        "99991231235959-0100",  # past the year 9999 in UTC
        "00010101000000+0100",  # before the year 1 in UTC
        FULLWIDTH_TIME,  # non-ASCII digits
    ],
)
def test_parse_generalized_time_rejects(value):
    with pytest.raises(ValueError) as info:
        parse_generalized_time(value)
    if value:
        assert value not in str(info.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20260315115959Z", EXPIRED),
        ("20260315120000Z", EXPIRED),  # exactly now
        ("20260315120000.000001Z", ENABLED),
        ("20260315130000+0100", EXPIRED),  # 12:00 UTC: exactly now
        ("20260315123000+0100", EXPIRED),  # 11:30 UTC
        ("20260315123000-0100", ENABLED),  # 13:30 UTC
        ("2026031512Z", EXPIRED),
        ("2026031511.99Z", EXPIRED),
        ("20990101000000Z", ENABLED),
    ],
)
def test_generalized_time_expiration(value, expected):
    assert source_status({"passwordExpirationTime": [value]}, GENERALIZED, NOW) is expected


def test_earliest_of_several_expiration_values_wins():
    entry = {"passwordExpirationTime": ["20990101000000Z", "20200101000000Z"]}
    assert source_status(entry, GENERALIZED, NOW) is EXPIRED


@pytest.mark.parametrize(
    "now",
    [
        NOW,
        NOW.astimezone(timezone(timedelta(hours=5))),
        NOW.astimezone(timezone(timedelta(hours=-8))),
    ],
)
def test_expiry_exactly_at_now_is_expired_in_any_time_zone(now):
    assert source_status({"passwordExpirationTime": ["20260315120000Z"]}, GENERALIZED, now) is (
        EXPIRED
    )
    assert source_status({"accountExpires": [str(NOW_FILETIME)]}, FILETIME, now) is EXPIRED


def test_naive_now_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        source_status({}, GENERALIZED, datetime(2026, 3, 15, 12))


# --- malformed values -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mapping", "entry", "attribute"),
    [
        (AD_STATUS_MAPPING, {"userAccountControl": ["0x202"]}, "userAccountControl"),
        (AD_STATUS_MAPPING, {"userAccountControl": ["enabled"]}, "userAccountControl"),
        (AD_STATUS_MAPPING, {"userAccountControl": ["5 14"]}, "userAccountControl"),
        (AD_STATUS_MAPPING, {"userAccountControl": ["1_000"]}, "userAccountControl"),
        (AD_STATUS_MAPPING, {"userAccountControl": [ARABIC_INDIC_512]}, "userAccountControl"),
        (AD_STATUS_MAPPING, {"accountExpires": ["never"]}, "accountExpires"),
        (AD_STATUS_MAPPING, {"accountExpires": ["-5"]}, "accountExpires"),
        (AD_STATUS_MAPPING, {"accountExpires": ["9223372036854775808"]}, "accountExpires"),
        (AD_STATUS_MAPPING, {"accountExpires": ["1" * 40]}, "accountExpires"),
        (SHADOW, {"shadowExpire": ["2026-03-15"]}, "shadowExpire"),
        (SHADOW, {"shadowExpire": ["-2"]}, "shadowExpire"),
        (GENERALIZED, {"passwordExpirationTime": ["20251231"]}, "passwordExpirationTime"),
        (GENERALIZED, {"passwordExpirationTime": ["20250230000000Z"]}, "passwordExpirationTime"),
        (BOTH, {"loginExpirationTime": ["yesterday"]}, "loginExpirationTime"),
    ],
)
def test_malformed_value_raises(mapping, entry, attribute):
    with pytest.raises(MalformedStatusAttribute) as info:
        source_status(entry, mapping, NOW)
    assert info.value.attribute == attribute
    assert isinstance(info.value, ValueError)


def test_malformed_message_names_the_attribute_and_never_the_value():
    with pytest.raises(MalformedStatusAttribute) as info:
        source_status({"userAccountControl": ["s3cr3t-looking"]}, AD_STATUS_MAPPING, NOW)
    assert str(info.value) == "userAccountControl: not a decimal integer"
    assert info.value.reason == "not a decimal integer"


def test_malformed_time_message_says_what_is_wrong():
    with pytest.raises(MalformedStatusAttribute) as info:
        source_status({"passwordExpirationTime": ["20250230000000Z"]}, GENERALIZED, NOW)
    assert str(info.value) == "passwordExpirationTime: not a valid calendar date and time"
    assert "20250230" not in str(info.value)


def test_malformed_disabled_attribute_raises_even_when_expired():
    entry = {"userAccountControl": ["bogus"], "accountExpires": ["1"]}
    with pytest.raises(MalformedStatusAttribute):
        source_status(entry, AD_STATUS_MAPPING, NOW)


def test_value_list_disabled_attribute_never_raises():
    assert source_status({"nsAccountLock": ["\x00weird"]}, NS_ACCOUNT_LOCK, NOW) is ENABLED


# --- mapping validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"expiration_attribute": "shadowExpire"}, "go together"),
        ({"expiration_format": ExpirationFormat.DAYS}, "go together"),
        (
            {"disabled_attribute": "f", "disabled_values": ("x",), "disabled_bitmask": 2},
            "exclusive",
        ),
        ({"disabled_values": ("TRUE",)}, "need a disabled_attribute"),
        ({"disabled_bitmask": 2}, "need a disabled_attribute"),
        ({"disabled_attribute": "f", "disabled_bitmask": 0}, "positive"),
        ({"disabled_attribute": "f", "disabled_bitmask": -2}, "positive"),
        ({"disabled_attribute": "f", "disabled_values": ("TRUE", " ")}, "blank value"),
        ({"disabled_attribute": " "}, "must not be blank"),
        (
            {"expiration_attribute": "", "expiration_format": ExpirationFormat.DAYS},
            "must not be blank",
        ),
    ],
)
def test_inconsistent_mapping_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StatusMapping(**kwargs)


def test_disabled_values_as_a_bare_string_is_rejected():
    with pytest.raises(TypeError):
        StatusMapping(disabled_attribute="nsAccountLock", disabled_values="TRUE")  # type: ignore[arg-type]


def test_disabled_values_given_as_a_list_are_stored_as_a_tuple():
    mapping = StatusMapping(disabled_attribute="a", disabled_values=["x"])  # type: ignore[arg-type]
    assert mapping.disabled_values == ("x",)
    hash(mapping)


def test_expiration_format_from_configuration_text_is_coerced():
    mapping = StatusMapping(expiration_attribute="shadowExpire", expiration_format="days")  # type: ignore[arg-type]
    assert mapping.expiration_format is ExpirationFormat.DAYS


def test_unknown_expiration_format_is_rejected():
    with pytest.raises(ValueError, match="not a valid ExpirationFormat"):
        StatusMapping(expiration_attribute="shadowExpire", expiration_format="epoch")  # type: ignore[arg-type]


def test_mapping_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        AD_STATUS_MAPPING.disabled_bitmask = 4  # type: ignore[misc]


# --- AD account flags (not a source status) ---------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({}, AdAccountFlags(locked_out=False, password_expired=False, must_change_password=False)),
        (
            {"msDS-User-Account-Control-Computed": ["0"], "pwdLastSet": ["133801632000000000"]},
            AdAccountFlags(locked_out=False, password_expired=False, must_change_password=False),
        ),
        (
            {"msDS-User-Account-Control-Computed": ["16"]},
            AdAccountFlags(locked_out=True, password_expired=False, must_change_password=False),
        ),
        (
            {"msDS-User-Account-Control-Computed": ["8388608"]},
            AdAccountFlags(locked_out=False, password_expired=True, must_change_password=False),
        ),
        (
            {"msds-user-account-control-computed": ["8388624"], "PWDLASTSET": ["0"]},
            AdAccountFlags(locked_out=True, password_expired=True, must_change_password=True),
        ),
        (
            {"pwdLastSet": ["0"]},
            AdAccountFlags(locked_out=False, password_expired=False, must_change_password=True),
        ),
    ],
)
def test_ad_account_flags(entry, expected):
    assert ad_account_flags(entry) == expected


def test_ad_lockout_and_password_expiry_are_not_read_from_stored_user_account_control():
    entry = {"userAccountControl": [str(0x200 | 0x10 | 0x800000)]}
    assert ad_account_flags(entry) == AdAccountFlags(
        locked_out=False, password_expired=False, must_change_password=False
    )


def test_ad_account_flags_do_not_change_source_status():
    entry = {
        "userAccountControl": ["512"],
        "msDS-User-Account-Control-Computed": [str(0x10 | 0x800000)],
        "pwdLastSet": ["0"],
    }
    assert source_status(entry, AD_STATUS_MAPPING, NOW) is ENABLED


@pytest.mark.parametrize(
    ("entry", "attribute"),
    [
        ({"msDS-User-Account-Control-Computed": ["locked"]}, "msDS-User-Account-Control-Computed"),
        ({"pwdLastSet": ["never"]}, "pwdLastSet"),
    ],
)
def test_ad_account_flags_malformed_value_raises(entry, attribute):
    with pytest.raises(MalformedStatusAttribute) as info:
        ad_account_flags(entry)
    assert info.value.attribute == attribute
