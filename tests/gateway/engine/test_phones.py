"""SPEC §3: phone-number provenance — which numbers sync overwrites and which it keeps."""

import dataclasses

import pytest

from gateway.engine.phones import (
    InvalidPhoneNumber,
    PhoneEntry,
    PhoneKind,
    admin_add,
    admin_delete,
    admin_edit,
    admin_reset,
    same_number,
    sync_phones,
    visible,
)


def synced(number: str) -> PhoneEntry:
    return PhoneEntry(number, manual=False)


def manual(number: str) -> PhoneEntry:
    return PhoneEntry(number, manual=True)


TOMBSTONE = manual("")


def test_phone_kinds():
    assert [kind.value for kind in PhoneKind] == ["sms", "voice"]


def test_phone_entry_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        synced("+1 555-5555").manual = True  # type: ignore[misc]


# --- same_number ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("+1 555-5555", "+1 555.5555"),
        ("+1 555-5555", "+15555555"),
        ("+1 (555) 555-0100", "+1 555 555 0100"),
        ("+44 20 7946 0958", "+44/20/7946/0958"),
        ("555-5555", "555 5555"),
        (" +1 555-5555 ", "+1 555-5555"),
    ],
)
def test_same_number_ignores_formatting(a, b):
    assert same_number(a, b)
    assert same_number(b, a)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("555-5555", "+1 555-5555"),  # a country code added
        ("+1 555-5555", "+44 555-5555"),  # the country code changed
        ("+1 555-5555", "1 555-5555"),  # no longer marked international
        ("+1 555-5555", "+1 555-5556"),  # a digit changed
        ("+1 555-5555", "+1 555-555"),  # a digit dropped
    ],
)
def test_same_number_compares_digits_and_country_code(a, b):
    assert not same_number(a, b)
    assert not same_number(b, a)


# --- sync -------------------------------------------------------------------------------------


def test_sync_with_no_attribute_mapped_leaves_the_list_unchanged():
    current = (synced("+1 555-5555"), manual("+1 555-0100"), TOMBSTONE)
    assert sync_phones(current, None) == current


def test_sync_fills_an_empty_list_from_the_directory():
    assert sync_phones((), ["+1 555-5555", "+1 555-0100"]) == (
        synced("+1 555-5555"),
        synced("+1 555-0100"),
    )


def test_sync_replaces_a_synced_number_the_directory_changed():
    assert sync_phones((synced("+1 555-5555"),), ["+1 555-0199"]) == (synced("+1 555-0199"),)


def test_sync_replaces_a_synced_number_whose_format_changed_in_the_directory():
    assert sync_phones((synced("+1 555-5555"),), ["+1 (555) 5555"]) == (synced("+1 (555) 5555"),)


def test_sync_never_overwrites_a_manual_number():
    current = (manual("+44 555-5555"),)
    assert sync_phones(current, ["+1 555-5555"]) == current


def test_sync_keeps_a_tombstone_and_does_not_bring_the_number_back():
    current = (TOMBSTONE,)
    assert sync_phones(current, ["+1 555-5555"]) == current
    assert visible(sync_phones(current, ["+1 555-5555"])) == ()


def test_sync_drops_a_synced_number_the_directory_no_longer_has():
    current = (synced("+1 555-5555"), synced("+1 555-0100"))
    assert sync_phones(current, ["+1 555-5555"]) == (synced("+1 555-5555"),)
    assert sync_phones(current, []) == ()


def test_sync_keeps_manual_slots_past_the_directory_values():
    current = (synced("+1 555-5555"), synced("+1 555-0100"), manual("+1 555-0142"))
    assert sync_phones(current, ["+1 555-5555"]) == (
        synced("+1 555-5555"),
        manual("+1 555-0142"),
    )
    assert sync_phones(current, []) == (manual("+1 555-0142"),)


def test_sync_aligns_slot_i_with_directory_value_i():
    current = (synced("+1 555-0001"), manual("+1 555-9999"), synced("+1 555-0003"))
    directory = ["+1 555-1001", "+1 555-1002", "+1 555-1003", "+1 555-1004"]
    assert sync_phones(current, directory) == (
        synced("+1 555-1001"),
        manual("+1 555-9999"),  # slot 1 is the administrator's: directory value 1 stays out
        synced("+1 555-1003"),
        synced("+1 555-1004"),
    )


@pytest.mark.parametrize("blank", ["", " ", "\t"])
def test_sync_ignores_blank_directory_values_before_aligning(blank):
    current = (synced("+1 555-0001"), synced("+1 555-0002"))
    assert sync_phones(current, [blank, "+1 555-0001", blank, "+1 555-0002"]) == current


def test_sync_takes_a_single_string_as_one_value():
    assert sync_phones((), "+1 555-5555") == (synced("+1 555-5555"),)  # type: ignore[arg-type]


def test_sync_is_idempotent():
    current = (synced("+1 555-5555"), TOMBSTONE, manual("+1 555-0100"))
    directory = ["+1 555-5555", "+1 555-0199", "+1 555-0200"]
    once = sync_phones(current, directory)
    assert sync_phones(once, directory) == once


# --- the examples of SPEC §3 and the reference ------------------------------------------------


def test_admin_reformat_stays_synced_and_next_sync_restores_directory_format():
    phones = sync_phones((), ["+1 555-5555"])
    phones = admin_edit(phones, 0, "+1 555.5555")
    assert phones == (synced("+1 555.5555"),)
    assert visible(phones) == ("+1 555.5555",)
    assert sync_phones(phones, ["+1 555-5555"]) == (synced("+1 555-5555"),)


def test_admin_country_code_change_is_manual_and_survives_sync():
    phones = sync_phones((), ["+1 555-5555"])
    phones = admin_edit(phones, 0, "+44 555-5555")
    assert phones == (manual("+44 555-5555"),)
    assert sync_phones(phones, ["+1 555-5555"]) == (manual("+44 555-5555"),)
    assert sync_phones(phones, ["+1 555-0199"]) == (manual("+44 555-5555"),)


def test_admin_digit_change_is_manual_and_survives_sync():
    phones = admin_edit(sync_phones((), ["+1 555-5555"]), 0, "+1 555-0199")
    assert phones == (manual("+1 555-0199"),)
    assert sync_phones(phones, ["+1 555-5555"]) == phones


def test_admin_delete_leaves_a_tombstone_that_survives_sync_and_stays_hidden():
    phones = sync_phones((), ["+1 555-5555", "+1 555-0100"])
    phones = admin_delete(phones, 0)
    assert phones == (TOMBSTONE, synced("+1 555-0100"))
    assert visible(phones) == ("+1 555-0100",)
    phones = sync_phones(phones, ["+1 555-5555", "+1 555-0100"])
    assert phones == (TOMBSTONE, synced("+1 555-0100"))
    assert visible(phones) == ("+1 555-0100",)


def test_manual_number_added_while_unmapped_stays_when_an_attribute_is_mapped_later():
    phones = admin_add((), "+1 555-0142")
    assert sync_phones(phones, None) == (manual("+1 555-0142"),)
    # The attribute is mapped now: the manual number keeps its slot and is still the default.
    phones = sync_phones(phones, ["+1 555-5555"])
    assert phones[0] == manual("+1 555-0142")
    assert visible(phones)[0] == "+1 555-0142"


def test_manual_number_added_while_unmapped_keeps_its_slot_over_directory_value():
    # Slot 0 belongs to the administrator, so directory value 0 has no slot; value 1 does.
    phones = admin_add((), "+1 555-0142")
    assert sync_phones(phones, ["+1 555-5555", "+1 555-0100"]) == (
        manual("+1 555-0142"),
        synced("+1 555-0100"),
    )


# --- admin edit -------------------------------------------------------------------------------


def test_admin_edit_of_synced_slot_to_the_same_text_stays_synced():
    assert admin_edit((synced("+1 555-5555"),), 0, "+1 555-5555") == (synced("+1 555-5555"),)


def test_admin_edit_of_a_manual_slot_stays_manual_even_with_the_same_digits():
    assert admin_edit((manual("+1 555-5555"),), 0, "+1 555.5555") == (manual("+1 555.5555"),)


def test_admin_edit_of_a_tombstone_makes_a_manual_number():
    assert admin_edit((TOMBSTONE,), 0, "+1 555-5555") == (manual("+1 555-5555"),)


def test_admin_edit_adding_a_country_code_makes_it_manual():
    assert admin_edit((synced("555-5555"),), 0, "+1 555-5555") == (manual("+1 555-5555"),)


@pytest.mark.parametrize("blank", ["", "   "])
def test_admin_edit_to_blank_is_a_delete(blank):
    current = (synced("+1 555-5555"), synced("+1 555-0100"))
    assert admin_edit(current, 0, blank) == admin_delete(current, 0)
    assert admin_edit(current, 0, blank) == (TOMBSTONE, synced("+1 555-0100"))


def test_admin_edit_changes_only_its_slot():
    current = (synced("+1 555-0001"), synced("+1 555-0002"), manual("+1 555-0003"))
    assert admin_edit(current, 1, "+1 555-0202") == (
        synced("+1 555-0001"),
        manual("+1 555-0202"),
        manual("+1 555-0003"),
    )


def test_admin_edit_strips_surrounding_whitespace():
    assert admin_edit((synced("+1 555-5555"),), 0, "  +1 555.5555 ") == (synced("+1 555.5555"),)


# --- admin add, delete, reset -----------------------------------------------------------------


def test_admin_add_appends_a_manual_number():
    current = (synced("+1 555-5555"),)
    assert admin_add(current, "+1 555-0142") == (synced("+1 555-5555"), manual("+1 555-0142"))


def test_admin_added_number_survives_sync():
    phones = admin_add(sync_phones((), ["+1 555-5555"]), "+1 555-0142")
    assert sync_phones(phones, ["+1 555-0199"]) == (synced("+1 555-0199"), manual("+1 555-0142"))
    assert sync_phones(phones, []) == (manual("+1 555-0142"),)


@pytest.mark.parametrize("entry", [synced("+1 555-5555"), manual("+1 555-5555"), TOMBSTONE])
def test_admin_delete_of_any_slot_is_a_manual_tombstone(entry):
    assert admin_delete((entry,), 0) == (TOMBSTONE,)


def test_admin_delete_keeps_following_slots_aligned():
    current = (synced("+1 555-0001"), synced("+1 555-0002"))
    phones = admin_delete(current, 0)
    assert sync_phones(phones, ["+1 555-0001", "+1 555-0202"]) == (
        TOMBSTONE,
        synced("+1 555-0202"),
    )


def test_admin_reset_of_a_manual_number_hands_the_slot_back_to_the_directory():
    phones = admin_reset((manual("+44 555-5555"),), 0)
    assert phones == (synced("+44 555-5555"),)  # kept until the next sync
    assert sync_phones(phones, ["+1 555-5555"]) == (synced("+1 555-5555"),)


def test_admin_reset_of_a_tombstone_is_hidden_until_the_next_sync_refills_it():
    phones = admin_reset((TOMBSTONE,), 0)
    assert phones == (synced(""),)
    assert visible(phones) == ()
    assert sync_phones(phones, ["+1 555-5555"]) == (synced("+1 555-5555"),)


def test_admin_reset_slot_is_dropped_when_the_directory_has_no_value_for_it():
    phones = admin_reset((synced("+1 555-0001"), manual("+1 555-0142")), 1)
    assert sync_phones(phones, ["+1 555-0001"]) == (synced("+1 555-0001"),)


def test_admin_reset_of_a_synced_slot_changes_nothing():
    current = (synced("+1 555-5555"),)
    assert admin_reset(current, 0) == current


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    [
        "+1 555-5555",
        "+1 (555) 555.0100",
        "555/5555",
        "0044 20 7946 0958",
        "5",
    ],
)
def test_admin_number_accepts_common_formats(number):
    assert admin_add((), number) == (manual(number),)


@pytest.mark.parametrize(
    "number",
    [
        "+",
        "()-./",
        "abc",
        "+1 555-5555 ext 12",
        "+1 555-5555#",
        "+1\t555",
        "+1 555\n5555",
        "+" + "".join(chr(0x0660 + int(c)) for c in "1555"),  # Arabic-Indic digits
    ],
)
@pytest.mark.parametrize("operation", ["add", "edit"])
def test_admin_number_must_have_a_digit_and_only_phone_characters(number, operation):
    with pytest.raises(InvalidPhoneNumber) as info:
        if operation == "add":
            admin_add((), number)
        else:
            admin_edit((synced("+1 555-5555"),), 0, number)
    assert isinstance(info.value, ValueError)


def test_invalid_number_message_does_not_repeat_the_number():
    # A phone number is personal data; error messages end up in logs.
    with pytest.raises(InvalidPhoneNumber) as info:
        admin_add((), "+1 555-0142 call me")
    assert "555" not in str(info.value)
    assert "digit" in str(info.value)


def test_admin_add_of_blank_is_invalid():
    with pytest.raises(InvalidPhoneNumber):
        admin_add((), "  ")


@pytest.mark.parametrize("index", [-1, 2, 10])
@pytest.mark.parametrize(
    "operation",
    [
        lambda phones, i: admin_edit(phones, i, "+1 555-0100"),
        lambda phones, i: admin_edit(phones, i, ""),
        admin_delete,
        admin_reset,
    ],
    ids=["edit", "edit-blank", "delete", "reset"],
)
def test_admin_operations_on_a_missing_slot_raise_index_error(operation, index):
    with pytest.raises(IndexError):
        operation((synced("+1 555-0001"), synced("+1 555-0002")), index)


def test_admin_operations_on_an_empty_list_raise_index_error():
    with pytest.raises(IndexError):
        admin_delete((), 0)


# --- visible ----------------------------------------------------------------------------------


def test_visible_hides_tombstones_and_keeps_the_order():
    phones = (TOMBSTONE, synced("+1 555-0001"), manual("+1 555-0002"), TOMBSTONE)
    assert visible(phones) == ("+1 555-0001", "+1 555-0002")


def test_first_visible_number_is_the_default():
    phones = (TOMBSTONE, manual("+1 555-0002"), synced("+1 555-0001"))
    assert visible(phones)[0] == "+1 555-0002"


def test_visible_of_an_empty_list_is_empty():
    assert visible(()) == ()


def test_operations_do_not_mutate_their_input():
    current = [synced("+1 555-0001"), manual("+1 555-0002")]
    before = list(current)
    sync_phones(current, ["+1 555-0101"])
    admin_edit(current, 0, "+44 1")
    admin_add(current, "+1 555-0003")
    admin_delete(current, 1)
    admin_reset(current, 1)
    assert current == before
