"""read_user: the same user by immutable id, in scope, or None."""

import uuid
from collections.abc import Callable

import pytest

from gateway.directory import Directory, DirectoryEntry, NameKind
from tests.gateway.directory.conftest import ldap_source
from tests.servers.slapd import Slapd


def unique() -> str:
    return f"r-{uuid.uuid4().hex[:10]}"


def find(directory: Directory, uid: str) -> DirectoryEntry:
    entry = directory.find_user(NameKind.LOGIN, uid)
    assert entry is not None
    return entry


def test_read_by_entry_uuid(corp: Directory) -> None:
    alice = find(corp, "alice")

    assert corp.read_user(alice.external_id) == alice
    assert corp.read_user(alice.external_id.upper()) == alice


@pytest.mark.parametrize(
    "external_id",
    # A well-formed UUID that no entry has; fixed, since the ids of parameters must be the
    # same in every pytest-xdist worker.
    ["5f0c6b1e-8d2a-4c3e-9b7a-1d2e3f405162", "not-a-uuid", "", "*", "*)(uid=*", "\x00", "a\udc80"],
)
def test_unknown_ids_are_none(corp: Directory, external_id: str) -> None:
    assert corp.read_user(external_id) is None


def test_a_user_moved_out_of_scope_is_none(slapd: Slapd, corp: Directory) -> None:
    uid = unique()
    dn = slapd.add_user(uid)
    entry = find(corp, uid)

    moved = slapd.rename(dn, f"uid={uid}", new_superior=slapd.contractors_dn)

    assert corp.read_user(entry.external_id) is None
    slapd.rename(moved, f"uid={uid}", new_superior=slapd.people_dn)
    assert corp.read_user(entry.external_id) == entry
    slapd.delete(dn)


def test_a_renamed_user_keeps_the_id(slapd: Slapd, corp: Directory) -> None:
    uid, new_uid = unique(), unique()
    dn = slapd.add_user(uid)
    entry = find(corp, uid)

    new_dn = slapd.rename(dn, f"uid={new_uid}")

    read = corp.read_user(entry.external_id)
    assert read is not None and read.dn == new_dn and read.first("uid") == new_uid
    slapd.delete(new_dn)


def test_a_deleted_user_is_none(slapd: Slapd, corp: Directory) -> None:
    uid = unique()
    dn = slapd.add_user(uid)
    entry = find(corp, uid)

    slapd.delete(dn)

    assert corp.read_user(entry.external_id) is None


def test_a_user_the_filter_excludes_is_none(
    slapd: Slapd, connect: Callable[..., Directory], corp: Directory
) -> None:
    uid = unique()
    slapd.add_user(uid, title="contractor")
    entry = find(corp, uid)
    filtered = connect(ldap_source([slapd.url], user_filter="(!(title=contractor))"))

    assert filtered.read_user(entry.external_id) is None
