"""From a directory entry's attributes to the status its source reports (SPEC §4.3).

`source_status` reads at most two attributes of one entry, as a `StatusMapping` names them:

- a *disabled* attribute: disabled when any of the listed values is present (compared
  case-insensitively), when the attribute is present at all (no values listed), or, for an
  integer flag attribute, when ``value & disabled_bitmask != 0``;
- an *expiration* attribute: expired when the instant it names is at or before ``now``.

With neither mapped every entry is enabled; with one mapped, it alone decides; when both apply,
DISABLED wins over EXPIRED. `AD_STATUS_MAPPING` is the built-in Active Directory mapping.

Values arrive as the strings ldap3 returns for the raw attribute values. An attribute that is
absent, or present with no values (ldap3 returns requested-but-absent attributes as ``[]``), is
not there; blank values are ignored. A value that cannot be read raises
`MalformedStatusAttribute`, so a broken entry or a wrong mapping is reported rather than
silently read as enabled.

`ad_account_flags` reads the Active Directory flags that the authentication path needs (lockout,
expired password, must change password); they never change the `SourceStatus`.
"""

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from gateway.engine.types import SourceStatus

__all__ = [
    "AD_STATUS_MAPPING",
    "AdAccountFlags",
    "ExpirationFormat",
    "MalformedStatusAttribute",
    "StatusMapping",
    "ad_account_flags",
    "days_to_datetime",
    "filetime_to_datetime",
    "parse_generalized_time",
    "source_status",
]


class ExpirationFormat(StrEnum):
    """How an expiration attribute encodes its instant."""

    #: RFC 4517 §3.3.13 GeneralizedTime, e.g. ``20251231235959Z``.
    GENERALIZED_TIME = "generalized_time"
    #: Windows FILETIME: 100-ns intervals since 1601-01-01 UTC (AD ``accountExpires``).
    FILETIME = "filetime"
    #: Whole days since 1970-01-01 UTC (``shadowExpire``, shadow(5)).
    DAYS = "days"


class MalformedStatusAttribute(ValueError):
    """A status attribute holds a value that cannot be read.

    The message names the attribute and what was wrong, never the value itself.
    """

    def __init__(self, attribute: str, reason: str) -> None:
        super().__init__(f"{attribute}: {reason}")
        self.attribute = attribute
        self.reason = reason


@dataclass(frozen=True)
class StatusMapping:
    """Which attributes of a directory entry say that a user is disabled or expired.

    Attributes:
        disabled_attribute: the attribute that marks a disabled user, or None.
        disabled_values: values of `disabled_attribute` that mean disabled, compared
            case-insensitively; empty means the attribute's mere presence means disabled.
        disabled_bitmask: for an integer flag attribute: disabled when ``value & mask != 0``.
            Exclusive with `disabled_values`.
        expiration_attribute: the attribute holding the account's expiry instant, or None.
        expiration_format: how `expiration_attribute` is encoded; required with it.

    Raises:
        ValueError: the mapping is inconsistent (values or bitmask without an attribute, both
            at once, an expiration attribute without its format or the reverse, a blank name
            or value, a bitmask <= 0) or names an unknown expiration format.
        TypeError: `disabled_values` is a bare string rather than a tuple of strings.
    """

    disabled_attribute: str | None = None
    disabled_values: tuple[str, ...] = ()
    disabled_bitmask: int | None = None
    expiration_attribute: str | None = None
    expiration_format: ExpirationFormat | None = None

    def __post_init__(self) -> None:
        # A bare string would be iterated character by character: "TRUE" would match "t".
        if isinstance(self.disabled_values, str):
            raise TypeError("disabled_values must be a tuple of strings, not a string")
        object.__setattr__(self, "disabled_values", tuple(self.disabled_values))
        if self.expiration_format is not None:
            # Configuration text ("days") becomes the enum; an unknown name raises ValueError.
            object.__setattr__(self, "expiration_format", ExpirationFormat(self.expiration_format))
        if self.disabled_attribute is not None and not self.disabled_attribute.strip():
            raise ValueError("disabled_attribute must not be blank")
        if self.expiration_attribute is not None and not self.expiration_attribute.strip():
            raise ValueError("expiration_attribute must not be blank")
        if (self.expiration_attribute is None) != (self.expiration_format is None):
            raise ValueError("expiration_attribute and expiration_format go together")
        if self.disabled_bitmask is not None and self.disabled_values:
            raise ValueError("disabled_bitmask and disabled_values are exclusive")
        if self.disabled_attribute is None and (
            self.disabled_values or self.disabled_bitmask is not None
        ):
            raise ValueError("disabled_values and disabled_bitmask need a disabled_attribute")
        if self.disabled_bitmask is not None and self.disabled_bitmask <= 0:
            raise ValueError("disabled_bitmask must be a positive integer")
        if any(not value.strip() for value in self.disabled_values):
            raise ValueError("disabled_values must not contain a blank value")


# MS-ADTS §2.2.16: ADS_UF_ACCOUNTDISABLE in the stored userAccountControl.
UF_ACCOUNTDISABLE = 0x2
# MS-ADTS §3.1.1.4.5.17: these two bits are only meaningful in the constructed
# msDS-User-Account-Control-Computed; the stored userAccountControl does not keep them current.
UF_LOCKOUT = 0x10
UF_PASSWORD_EXPIRED = 0x0080_0000

AD_USER_ACCOUNT_CONTROL = "userAccountControl"
AD_USER_ACCOUNT_CONTROL_COMPUTED = "msDS-User-Account-Control-Computed"
AD_ACCOUNT_EXPIRES = "accountExpires"
AD_PWD_LAST_SET = "pwdLastSet"  # noqa: S105 - an attribute name, not a secret

#: SPEC §4.3: the built-in mapping of `ad` sources (overridable with `dataclasses.replace`).
AD_STATUS_MAPPING = StatusMapping(
    disabled_attribute=AD_USER_ACCOUNT_CONTROL,
    disabled_bitmask=UF_ACCOUNTDISABLE,
    expiration_attribute=AD_ACCOUNT_EXPIRES,
    expiration_format=ExpirationFormat.FILETIME,
)


@dataclass(frozen=True)
class AdAccountFlags:
    """Active Directory account conditions the authentication path acts on.

    None of these changes the `SourceStatus`: a locked-out user or one whose password expired
    is still an enabled account; the bind is refused, the record is not disabled.
    """

    locked_out: bool
    password_expired: bool
    #: ``pwdLastSet`` is 0: the user must change the password at next logon (SPEC §6).
    must_change_password: bool


def source_status(
    attributes: Mapping[str, Sequence[str]], mapping: StatusMapping, now: datetime
) -> SourceStatus:
    """Decide what a directory entry says about its user's status.

    Args:
        attributes: the entry's attributes; names match case-insensitively (RFC 4512 §2.5).
        mapping: which attributes to read and how.
        now: the current instant, timezone-aware.

    Returns:
        DISABLED if the disabled attribute says so (whatever the expiration says), else
        EXPIRED if the expiry instant is at or before `now`, else ENABLED. Never MISSING: an
        entry that was found is, by definition, not missing.

    Raises:
        MalformedStatusAttribute: a mapped attribute holds a value that cannot be read. The
            expiration attribute is not read when the entry is already disabled, since it
            cannot change the answer.
        ValueError: `now` is naive.
    """
    _require_aware(now)
    values = _CaseInsensitiveAttributes(attributes)
    attribute = mapping.disabled_attribute
    if attribute is not None and _is_disabled(values.get(attribute), attribute, mapping):
        return SourceStatus.DISABLED
    if mapping.expiration_attribute is not None and mapping.expiration_format is not None:
        expires = _expiry(
            values.get(mapping.expiration_attribute),
            mapping.expiration_attribute,
            mapping.expiration_format,
        )
        if expires is not None and expires <= now:
            return SourceStatus.EXPIRED
    return SourceStatus.ENABLED


def ad_account_flags(attributes: Mapping[str, Sequence[str]]) -> AdAccountFlags:
    """Read lockout and password state of an Active Directory user.

    Lockout and password expiry come from the constructed ``msDS-User-Account-Control-Computed``
    (MS-ADTS §3.1.1.4.5.17), which the connector must request by name; the stored
    ``userAccountControl`` is not read for them. An absent attribute reads as "not set".

    Args:
        attributes: the entry's attributes; names match case-insensitively.

    Returns:
        The flags; they do not change the `SourceStatus` (see `AdAccountFlags`).

    Raises:
        MalformedStatusAttribute: ``msDS-User-Account-Control-Computed`` or ``pwdLastSet``
            is not a decimal integer.
    """
    values = _CaseInsensitiveAttributes(attributes)
    computed = 0
    for value in values.get(AD_USER_ACCOUNT_CONTROL_COMPUTED):
        computed |= _read_int(value, AD_USER_ACCOUNT_CONTROL_COMPUTED)
    pwd_last_set = [_read_int(v, AD_PWD_LAST_SET) for v in values.get(AD_PWD_LAST_SET)]
    return AdAccountFlags(
        locked_out=bool(computed & UF_LOCKOUT),
        password_expired=bool(computed & UF_PASSWORD_EXPIRED),
        must_change_password=0 in pwd_last_set,
    )


# RFC 4517 §3.3.13:
#   GeneralizedTime = century year month day hour [ minute [ second / leap-second ] ]
#                     [ fraction ] g-time-zone
#   fraction = ( DOT / COMMA ) 1*(%x30-39);  g-time-zone = "Z" / ( "+" / "-" ) hour [ minute ]
# The time zone is mandatory in LDAP (unlike X.680), so a value without one is malformed.
_GENERALIZED_TIME = re.compile(
    r"(?P<year>[0-9]{4})(?P<month>[0-9]{2})(?P<day>[0-9]{2})(?P<hour>[0-9]{2})"
    r"(?:(?P<minute>[0-9]{2})(?P<second>[0-9]{2})?)?"
    r"(?:[.,](?P<fraction>[0-9]+))?"
    r"(?:(?P<utc>Z)|(?P<sign>[+-])(?P<off_hour>[0-9]{2})(?P<off_minute>[0-9]{2})?)"
)
# Digits of a fraction beyond this cannot move the result by a microsecond.
_FRACTION_DIGITS = 18


def parse_generalized_time(value: str) -> datetime:
    """Parse an LDAP GeneralizedTime (RFC 4517 §3.3.13) into an aware UTC datetime.

    Minutes and seconds are optional; a fraction applies to the last unit given (so
    ``2025123123.5Z`` is 23:30); a leap second (``60``) is read as the next second.
    Sub-microsecond precision is truncated.

    Args:
        value: the attribute value, e.g. ``20251231235959Z`` or ``202512312359.5+0100``.

    Returns:
        The instant, with ``tzinfo=UTC``.

    Raises:
        ValueError: the value is not a GeneralizedTime, names no real date or time, or lies
            outside the years 1-9999 once converted to UTC. The message omits the value.
    """
    match = _GENERALIZED_TIME.fullmatch(value)
    if match is None:
        raise ValueError("not an RFC 4517 generalized time")
    minute, second = match["minute"], match["second"]
    leap = second == "60"
    try:
        instant = datetime(
            int(match["year"]),
            int(match["month"]),
            int(match["day"]),
            int(match["hour"]),
            int(minute or 0),
            59 if leap else int(second or 0),
            tzinfo=UTC,
        )
    except ValueError:
        raise ValueError("not a valid calendar date and time") from None
    shift = timedelta(seconds=1) if leap else timedelta()
    if match["fraction"]:
        digits = match["fraction"][:_FRACTION_DIGITS]
        # RFC 4517: the fraction is of the hour, minute or second, whichever came last.
        unit = 1 if second is not None else 60 if minute is not None else 3600
        shift += timedelta(microseconds=int(digits) * unit * 1_000_000 // 10 ** len(digits))
    if match["sign"]:
        off_hour, off_minute = int(match["off_hour"]), int(match["off_minute"] or 0)
        if off_hour > 23 or off_minute > 59:
            raise ValueError("time zone offset out of range")
        offset = timedelta(hours=off_hour, minutes=off_minute)
        # Local time = UTC + offset, so UTC = local time - offset.
        shift -= offset if match["sign"] == "+" else -offset
    try:
        return instant + shift
    except OverflowError:
        raise ValueError("instant outside the years 1-9999") from None


_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
# MS-ADA1 §2.1 (accountExpires): 0 and 0x7FFFFFFFFFFFFFFF both mean "never expires"; AD writes
# the latter at creation and the former when an expiry date is removed again.
_FILETIME_NEVER = frozenset({0, 0x7FFF_FFFF_FFFF_FFFF})
_FILETIME_MAX = 0x7FFF_FFFF_FFFF_FFFF  # a signed 64-bit LargeInteger


def filetime_to_datetime(value: int) -> datetime | None:
    """Convert a Windows FILETIME (100-ns intervals since 1601-01-01 UTC) to a datetime.

    Args:
        value: the integer value, e.g. of ``accountExpires``.

    Returns:
        The instant (aware, UTC; sub-microsecond part truncated), or None for "never": 0 and
        0x7FFFFFFFFFFFFFFF, and instants after the year 9999, which no clock will reach.

    Raises:
        ValueError: the value is negative or larger than a signed 64-bit integer.
    """
    if value < 0 or value > _FILETIME_MAX:
        raise ValueError("FILETIME out of range")
    if value in _FILETIME_NEVER:
        return None
    try:
        return _FILETIME_EPOCH + timedelta(microseconds=value // 10)
    except OverflowError:
        return None


_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def days_to_datetime(value: int) -> datetime | None:
    """Convert a day count since 1970-01-01 (``shadowExpire``, shadow(5)) to a datetime.

    The account expires at the start (00:00 UTC) of the given day. shadow(5) calls 0
    ambiguous (no expiry, or expired since 1970); it is read as expired, because
    ``chage -E 0`` is how administrators lock an account, and reading it as "never" would
    let a locked account in.

    Args:
        value: the day number.

    Returns:
        The instant (aware, UTC), or None for "never": -1 (what ``chage -E -1`` stores), and
        days after the year 9999.

    Raises:
        ValueError: the value is below -1.
    """
    if value == -1:
        return None
    if value < -1:
        raise ValueError("day count below -1")
    try:
        return _UNIX_EPOCH + timedelta(days=value)
    except OverflowError:
        return None


class _CaseInsensitiveAttributes:
    """Attribute lookup by name, ignoring case (RFC 4512 §2.5); blank values dropped."""

    def __init__(self, attributes: Mapping[str, Sequence[str]]) -> None:
        # Looked up on demand: a status reads one or two of an entry's attributes, and
        # folding every name and value of every entry was a large share of a bulk sync.
        self._attributes = attributes

    def get(self, name: str) -> list[str]:
        key = name.casefold()
        return [
            value
            for attribute, values in self._attributes.items()
            if attribute.casefold() == key
            for value in _as_values(values)
        ]


def _as_values(values: Sequence[str]) -> Iterable[str]:
    # A single string is a Sequence[str] too: read it as one value, not as its characters.
    items = (values,) if isinstance(values, str) else values
    return (value.strip() for value in items if value.strip())


def _is_disabled(values: list[str], attribute: str, mapping: StatusMapping) -> bool:
    if mapping.disabled_bitmask is not None:
        # Flag attributes such as AD's userAccountControl (a signed 32-bit INTEGER, MS-ADTS
        # §2.2.16) come as signed decimals; Python's & on a negative int is two's complement,
        # which is exactly the bit pattern the directory stored.
        return any(_read_int(v, attribute) & mapping.disabled_bitmask for v in values)
    if not mapping.disabled_values:
        return bool(values)
    wanted = {value.casefold() for value in mapping.disabled_values}
    return any(value.casefold() in wanted for value in values)


def _expiry(values: list[str], attribute: str, fmt: ExpirationFormat) -> datetime | None:
    """The earliest expiry instant among the values, or None if none expires."""
    instants = [_read_instant(value, attribute, fmt) for value in values]
    # Expiration attributes are single-valued; if a directory sends several, the earliest wins
    # so a stray value can never extend an account's life.
    return min((i for i in instants if i is not None), default=None)


def _read_instant(value: str, attribute: str, fmt: ExpirationFormat) -> datetime | None:
    try:
        match fmt:
            case ExpirationFormat.GENERALIZED_TIME:
                return parse_generalized_time(value)
            case ExpirationFormat.FILETIME:
                return filetime_to_datetime(_read_int(value, attribute))
            case ExpirationFormat.DAYS:
                return days_to_datetime(_read_int(value, attribute))
    except MalformedStatusAttribute:
        raise
    except ValueError as exc:
        raise MalformedStatusAttribute(attribute, str(exc)) from None


_DECIMAL = re.compile(r"[+-]?[0-9]{1,20}")


def _read_int(value: str, attribute: str) -> int:
    # An explicit ASCII pattern: int() would also accept "1_000" and non-ASCII digits, and its
    # error message repeats the value.
    if _DECIMAL.fullmatch(value) is None:
        raise MalformedStatusAttribute(attribute, "not a decimal integer")
    return int(value)


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
