"""Phone-number provenance (SPEC §3): which numbers sync may overwrite and which it may not.

A user has one ordered list per kind (SMS, voice); the first visible number is the default.
Slot ``i`` of a list lines up with value ``i`` of the mapped directory attribute. Each slot is
either *synced* (it follows the directory, format included) or *manual* (an administrator
entered it, changed its digits or country code, or deleted it; sync never touches it again,
even when a phone attribute is mapped later). A deleted slot stays as a hidden tombstone
(``number == ""``) so the next sync cannot bring the number back.

An administrator who only re-formats a synced number leaves it synced: the directory owns the
format, and the next sync restores it.

Every function returns a new tuple; nothing is changed in place.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "InvalidPhoneNumber",
    "PhoneEntry",
    "PhoneKind",
    "admin_add",
    "admin_delete",
    "admin_edit",
    "admin_reset",
    "same_number",
    "sync_phones",
    "visible",
]


class PhoneKind(StrEnum):
    """The two lists a user has; each is synced from its own attribute (SPEC §2)."""

    SMS = "sms"
    VOICE = "voice"


class InvalidPhoneNumber(ValueError):
    """An administrator's number has no digit or a character a phone number cannot contain.

    The message does not repeat the number (it is personal data and may end up in logs).
    """

    def __init__(self, problem: str | None = None) -> None:
        super().__init__(
            problem
            or "a phone number needs at least one digit and may contain only "
            "digits, spaces and + ( ) - . /"
        )


@dataclass(frozen=True)
class PhoneEntry:
    """One slot of a phone list."""

    #: The number as displayed; "" is a tombstone left by an administrator's delete.
    number: str
    #: True when an administrator owns the slot: sync never overwrites it.
    manual: bool


_DIGITS = frozenset("0123456789")
# Deliberately lenient (no E.164): directories and administrators write numbers many ways.
_ALLOWED = _DIGITS | frozenset("+ ()-./")


def same_number(a: str, b: str) -> bool:
    """Tell whether two strings are the same phone number written differently.

    Only the digits count, plus whether the number starts with ``+``: a leading ``+`` marks
    the digits after it as an international number, country code included, so
    ``+1 555-5555`` equals ``+1 555.5555`` but not ``1 555-5555`` nor ``555-5555``.

    Args:
        a: a number as written.
        b: another number as written.

    Returns:
        True when both have the same digits and both or neither start with ``+``.
    """
    return _number_key(a) == _number_key(b)


def sync_phones(
    current: Sequence[PhoneEntry], directory: Sequence[str] | None
) -> tuple[PhoneEntry, ...]:
    """Apply what the directory holds now to one phone list.

    Blank directory values are dropped first; then slot ``i`` lines up with value ``i``. A
    manual slot (tombstones included) is kept as it is; any other slot takes the directory's
    value exactly as the directory formats it; a synced slot past the directory's last value
    is dropped.

    Args:
        current: the stored list.
        directory: the mapped attribute's values, or None when no attribute is mapped (the
            list is then left alone, manual numbers and synced ones alike).

    Returns:
        The new list.
    """
    if directory is None:
        return tuple(current)
    if isinstance(directory, str):  # one value, not a sequence of characters
        directory = (directory,)
    values = [value.strip() for value in directory if value.strip()]
    result: list[PhoneEntry] = []
    for i in range(max(len(current), len(values))):
        if i < len(current) and current[i].manual:
            result.append(current[i])
        elif i < len(values):
            result.append(PhoneEntry(values[i], manual=False))
        # else: a synced slot the directory no longer fills is dropped.
    return tuple(result)


def admin_edit(current: Sequence[PhoneEntry], index: int, number: str) -> tuple[PhoneEntry, ...]:
    """Apply an administrator's edit of one slot.

    A synced slot edited to the same number in another format stays synced (the next sync
    restores the directory's format); changing the digits or the country code makes it
    manual. Editing a manual slot keeps it manual. Editing to blank is a delete.

    Args:
        current: the stored list.
        index: the slot, 0-based.
        number: the number as the administrator typed it.

    Returns:
        The new list.

    Raises:
        IndexError: there is no slot `index`.
        InvalidPhoneNumber: `number` is not blank and not a plausible phone number.
    """
    entry = current[_check_index(current, index)]
    if not number.strip():
        return admin_delete(current, index)
    number = _validated(number)
    manual = entry.manual or not same_number(entry.number, number)
    return _replace(current, index, PhoneEntry(number, manual=manual))


def admin_add(current: Sequence[PhoneEntry], number: str) -> tuple[PhoneEntry, ...]:
    """Append a number an administrator entered; it is manual and sync never overwrites it.

    Args:
        current: the stored list.
        number: the number as the administrator typed it.

    Returns:
        The new list, the number last.

    Raises:
        InvalidPhoneNumber: `number` is not a plausible phone number.
    """
    return (*current, PhoneEntry(_validated(number), manual=True))


def admin_delete(current: Sequence[PhoneEntry], index: int) -> tuple[PhoneEntry, ...]:
    """Delete a slot's number, leaving a manual tombstone that sync does not refill.

    The slot keeps its place so that the following slots stay aligned with the directory.

    Args:
        current: the stored list.
        index: the slot, 0-based.

    Returns:
        The new list.

    Raises:
        IndexError: there is no slot `index`.
    """
    _check_index(current, index)
    return _replace(current, index, PhoneEntry("", manual=True))


def admin_reset(current: Sequence[PhoneEntry], index: int) -> tuple[PhoneEntry, ...]:
    """Hand a slot back to the directory.

    The slot becomes synced and keeps its current number (hidden if it was a tombstone) until
    the next sync fills it with the directory's value, or drops it when the directory has
    none for that position.

    Args:
        current: the stored list.
        index: the slot, 0-based.

    Returns:
        The new list.

    Raises:
        IndexError: there is no slot `index`.
    """
    entry = current[_check_index(current, index)]
    return _replace(current, index, PhoneEntry(entry.number, manual=False))


def visible(entries: Sequence[PhoneEntry]) -> tuple[str, ...]:
    """The numbers to show and use, in order; the first is the default (SPEC §3).

    Args:
        entries: a phone list.

    Returns:
        Its non-blank numbers; tombstones are hidden.
    """
    return tuple(entry.number for entry in entries if entry.number.strip())


def _number_key(number: str) -> tuple[bool, str]:
    stripped = number.strip()
    return stripped.startswith("+"), "".join(c for c in stripped if c in _DIGITS)


#: An E.164 number has at most 15 digits; this leaves room for any formatting around them.
MAX_LENGTH = 64


def _validated(number: str) -> str:
    number = number.strip()
    if not any(c in _DIGITS for c in number) or not set(number) <= _ALLOWED:
        raise InvalidPhoneNumber()
    if len(number) > MAX_LENGTH:
        raise InvalidPhoneNumber(f"a phone number has at most {MAX_LENGTH} characters")
    return number


def _check_index(current: Sequence[PhoneEntry], index: int) -> int:
    # No negative indexes: an administrator names a slot by its position, and -1 silently
    # meaning "the last one" would edit the wrong number.
    if not 0 <= index < len(current):
        raise IndexError("no phone number at that position")
    return index


def _replace(
    current: Sequence[PhoneEntry], index: int, entry: PhoneEntry
) -> tuple[PhoneEntry, ...]:
    return (*current[:index], entry, *current[index + 1 :])
