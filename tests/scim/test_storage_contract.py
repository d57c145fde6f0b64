"""scim2-server's storage contract (`scim2_server.testing`) on both storages of scim/storage.py,
on SQLite and PostgreSQL: each test gets the runtime of a `harness` (tests/scim/conftest.py),
whose store is the `store_url` of tests/store_fixtures.py, and its provisioning service.

- `SourceStorage`, for the `scim` source, with its endpoint's provider (models, resource types
  and ServiceProviderConfig, scim/schemas.py): the whole contract.
- `AdminStorage`, with the admin view's provider: the reads of the contract. Its users are
  provisioned by the `scim` source's client (`AdminView`), since the view itself is read-only.

Where idgate answers otherwise than the contract by design, the contract's test or case is left
out by name, with the rule that decides, and idgate's own answer is asserted instead. A name
that no longer names a test or a case of the contract is an error, so nothing is left out by a
stale entry. CI forbids skips (tests/conftest.py), so nothing here may skip either.

Beyond the contract, whose searches at the root are unsorted, `TestSourceStorage` holds its
rule of one collection for sorted ones too (RFC 7644 §3.4.2.1, §3.4.2.3).
"""

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar, cast

import pytest
from scim2_models import (
    Context,
    InvalidFilterException,
    InvalidValueException,
    Resource,
    ResourceType,
    ResponseParameters,
    SCIMException,
    ScimProvider,
    SearchRequest,
    TooManyException,
)
from scim2_server.errors import MethodNotAllowedException
from scim2_server.storage import AsyncScimStorage, SearchPage
from scim2_server.testing import (
    SEARCH_FILTERS,
    SEARCH_SORTS,
    AsyncScimStorageContract,
    ScimStorageContract,
)

import scim.storage
from gateway.config.sources import EntraSource, ScimSource
from scim import schemas
from scim.storage import AdminStorage, SourceStorage
from tests.scim.harness import SCIM_SOURCE, Harness

#: A filter's answer on SEARCH_USERS: the userNames it finds, or the error it is refused with.
FilterAnswer = frozenset[str] | type[SCIMException]
#: A sort's answer on SEARCH_USERS: the userNames in order, those with equal sort values in
#: one set; or the error it is refused with; or None where a test of its own checks it.
SortAnswer = tuple[frozenset[str], ...] | type[SCIMException] | None

#: The contract lets a storage refuse a filter it cannot evaluate (InvalidFilterException,
#: 400 invalidFilter), rather than filter a page afterwards; idgate refuses these.
REFUSED_FILTERS: dict[str, FilterAnswer] = {
    # RFC 7644 §3.4.2.2 orders values with gt, ge, lt and le; null is no value to order.
    "title gt null": InvalidFilterException,
    # Only the sub-attributes of `name` are in the allow-list (scim/filters.py).
    "name pr": InvalidFilterException,
    # A date-time compares as an instant (RFC 7644 §3.4.2.2 gt/lt), not as a substring.
    'meta.created co "20"': InvalidFilterException,
}

#: Where both views read a filter otherwise than scim2-models' evaluator.
COMMON_FILTERS: dict[str, FilterAnswer] = {
    **REFUSED_FILTERS,
    # RFC 7644 §3.4.2.2: `pr` wants a non-empty value, and idgate reads `eq null` as the
    # negation of `pr` (scim/filters.py): carol's title "" is no value, as Bob's missing one.
    "title eq null": frozenset({"Bob", "carol"}),
    "title ne null": frozenset({"alice", "dave_%"}),
    # RFC 7644 §3.4.2.2: "If the specified attribute in a filter expression is a multi-valued
    # attribute, the filter matches if any of the values of the specified attribute match the
    # specified criterion": alice's home address is not her work one; carol has no address.
    'emails ne "alice@work.example"': frozenset({"alice", "Bob", "dave_%"}),
}

#: A source's view. SPEC §4.2: a SCIM client's `active` is the source status, and a user
#: created without it is enabled: carol and dave are active to filters, though the resource
#: their client gets back holds no `active` (scim/mapping.py returns the client's document).
SOURCE_FILTERS: dict[str, FilterAnswer] = {
    **COMMON_FILTERS,
    "active eq true": frozenset({"alice", "carol", "dave_%"}),
    "not (active eq true)": frozenset({"Bob"}),
    "active ne true": frozenset({"Bob"}),
    "active pr": frozenset({"alice", "Bob", "carol", "dave_%"}),
}

#: The admin view shows the gateway's `active` on every user: the evaluator agrees there.
ADMIN_FILTERS: dict[str, FilterAnswer] = COMMON_FILTERS


def _sorts(by: str, ascending: SortAnswer) -> dict[tuple[str, str], SortAnswer]:
    """Both orders of a sort: descending is ascending reversed, ties and all."""
    descending = ascending[::-1] if isinstance(ascending, tuple) else ascending
    return {(by, "ascending"): ascending, (by, "descending"): descending}


COMMON_SORTS: dict[tuple[str, str], SortAnswer] = {
    # RFC 7644 §3.4.2.3: values sort by their type, and "if there is no data for the specified
    # sortBy value ... they are ordered last if ascending and first if descending"; "" is no
    # data, as for `pr` (store/search.py sort_key), so carol's title sorts with Bob's missing one.
    **_sorts("title", (frozenset({"dave_%"}), frozenset({"alice"}), frozenset({"Bob", "carol"}))),
    # idgate sorts by single-valued attributes only, and refuses the others with 400
    # invalidValue (scim/filters.py Translator.sort).
    **_sorts("emails", InvalidValueException),
    **_sorts("emails.type", InvalidValueException),
}

#: A source's view: a user created without `active` is enabled (SPEC §4.2), so it sorts with
#: the active ones, not with the missing values.
SOURCE_SORTS: dict[tuple[str, str], SortAnswer] = {
    **COMMON_SORTS,
    **_sorts("active", (frozenset({"Bob"}), frozenset({"alice", "carol", "dave_%"}))),
}

#: The admin view sorts `active` by the gateway's status column: "active" before "disabled",
#: so true before false, where the evaluator and the source view put false first. RFC 7644
#: §3.4.2.3 gives Booleans no order; `test_sort_by_active_groups_the_statuses` checks what it
#: does require.
ADMIN_SORTS: dict[tuple[str, str], SortAnswer] = {**COMMON_SORTS, **_sorts("active", None)}

#: RFC 9865 §2: idgate pages by index only; its ServiceProviderConfig announces no cursors
#: (scim/schemas.py), which scim2-server allows only of a storage without `supports_cursors`.
#: `test_pages_by_index_only` asserts both.
CURSOR_TESTS = {
    name: "RFC 9865 §2: index paging only"
    for name in dir(ScimStorageContract)
    if name.startswith("test_cursor_")
}

#: SPEC §7: the admin view is read-only for SCIM clients; `test_writes_are_refused` asserts
#: the 405 (RFC 9110 §15.5.6) the storage answers behind the endpoint's own refusal.
WRITE_TESTS = {
    name: "SPEC §7: the admin view is read-only"
    for name in (
        "test_create_fills_the_identifier_and_the_meta",
        "test_create_does_not_change_the_given_resource",
        "test_created_resources_get_distinct_identifiers",
        "test_create_returns_a_copy",
        "test_create_with_a_taken_unique_value",
        "test_update_replaces_the_stored_resource",
        "test_update_does_not_change_the_given_resource",
        "test_update_returns_a_copy",
        "test_update_an_unknown_resource",
        "test_update_with_the_expected_version",
        "test_update_with_an_outdated_version",
        "test_update_with_a_taken_unique_value",
        "test_update_frees_the_former_unique_values",
        "test_delete_removes_the_resource",
        "test_delete_an_unknown_resource",
        "test_delete_with_the_expected_version",
        "test_delete_with_an_outdated_version",
        "test_delete_frees_the_unique_values",
    )
}

#: SPEC §7: the admin view serves Users only (scim/schemas.py admin_provider): no Group
#: resource type, so no group to create, to look a user up under, or to search at the root.
#: `test_serves_users_only` asserts it.
GROUP_TESTS = {
    name: "SPEC §7: the admin view has no Group resource type"
    for name in (
        "test_get_a_resource_of_another_type",
        "test_get_keeps_what_the_response_returns",
        "test_search_a_resource_type",
        "test_search_at_the_root",
        "test_search_at_the_root_on_an_attribute_some_types_lack",
    )
}

C = TypeVar("C", bound=type)


def leaving_out(tests: Mapping[str, str]) -> Callable[[C], C]:
    """A class decorator: the contract's `tests` (name -> why) are not collected in the class.

    Raises:
        LookupError: a name is not a test of the contract (a stale entry).
    """

    def leave_out(cls: C) -> C:
        for name in tests:
            if not callable(getattr(ScimStorageContract, name, None)):
                raise LookupError(f"{name} is not a test of scim2-server's storage contract")
            setattr(cls, name, None)
        return cls

    return leave_out


class IdgateContract(AsyncScimStorageContract):
    """The contract, less the filter and sort cases idgate answers otherwise, which are
    checked against idgate's own answers (`filters`, `sorts`) instead."""

    filters: ClassVar[Mapping[str, FilterAnswer]]
    sorts: ClassVar[Mapping[tuple[str, str], SortAnswer]]

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        stale = set(self.filters) - set(SEARCH_FILTERS)
        stale |= {by for by, _ in self.sorts} - set(SEARCH_SORTS)
        assert not stale, f"not cases of the contract: {sorted(stale)}"
        match metafunc.function.__name__:
            case "test_search_filters_as_the_filter_evaluator":
                metafunc.parametrize(
                    "scim_filter", [f for f in SEARCH_FILTERS if f not in self.filters]
                )
            case "test_search_sorts_as_search_request_sort":
                cases = [
                    (by, order)
                    for by in SEARCH_SORTS
                    for order in ("ascending", "descending")
                    if (by, order) not in self.sorts
                ]
                metafunc.parametrize(("sort_by", "sort_order"), cases)
            case "test_search_filters_as_idgate":
                metafunc.parametrize("scim_filter", sorted(self.filters))
            case "test_search_sorts_as_idgate":
                cases = sorted(key for key, answer in self.sorts.items() if answer is not None)
                metafunc.parametrize(("sort_by", "sort_order"), cases)

    # The contract's parametrized tests, parametrized by `pytest_generate_tests` instead.

    def test_search_filters_as_the_filter_evaluator(
        self,
        storage: Any,
        provider: ScimProvider,
        user_type: ResourceType,
        user_model: Any,
        scim_filter: str,
    ) -> None:
        super().test_search_filters_as_the_filter_evaluator(
            storage, provider, user_type, user_model, scim_filter
        )

    def test_search_sorts_as_search_request_sort(
        self,
        storage: Any,
        provider: ScimProvider,
        user_type: ResourceType,
        user_model: Any,
        sort_by: str,
        sort_order: str,
    ) -> None:
        super().test_search_sorts_as_search_request_sort(
            storage, provider, user_type, user_model, sort_by, sort_order
        )

    # What idgate answers instead.

    def create_search_users(self, storage: Any, user_type: ResourceType, user_model: Any) -> None:
        for user in self.search_users():
            storage.create(user_type, user_model.model_validate(user))

    def test_search_filters_as_idgate(
        self, storage: Any, user_type: ResourceType, user_model: Any, scim_filter: str
    ) -> None:
        """A filter the evaluator reads otherwise finds what idgate's rules say, or is refused."""
        self.create_search_users(storage, user_type, user_model)
        search_request = self.search_request([user_model], filter=scim_filter)
        answer = self.filters[scim_filter]

        if isinstance(answer, type):
            with pytest.raises(answer):
                self.search(storage, [user_type], search_request)
            return
        page = self.search(storage, [user_type], search_request)
        found = frozenset(r.user_name for r in page.resources)
        assert (page.total, found) == (len(answer), answer)

    def test_search_sorts_as_idgate(
        self,
        storage: Any,
        user_type: ResourceType,
        user_model: Any,
        sort_by: str,
        sort_order: str,
    ) -> None:
        """A sort the evaluator reads otherwise orders as idgate's rules say, or is refused."""
        self.create_search_users(storage, user_type, user_model)
        search_request = self.search_request([user_model], sort_by=sort_by, sort_order=sort_order)
        answer = self.sorts[(sort_by, sort_order)]
        assert answer is not None

        if isinstance(answer, type):
            with pytest.raises(answer):
                self.search(storage, [user_type], search_request)
            return
        found = [r.user_name for r in self.search(storage, [user_type], search_request).resources]
        groups, start = [], 0
        for group in answer:
            groups.append(set(found[start : start + len(group)]))
            start += len(group)
        assert (groups, len(found)) == ([set(g) for g in answer], start)

    def test_pages_by_index_only(self, storage: Any, provider: ScimProvider) -> None:
        """Instead of the cursor tests: no cursors announced, and none supported."""
        pagination = provider.config.pagination if provider.config else None
        assert pagination is not None
        assert (pagination.cursor, pagination.index) == (False, True)
        assert storage.supports_cursors is False


@leaving_out(CURSOR_TESTS)
class TestSourceStorage(IdgateContract):
    """The `scim` source's endpoint storage: every test of the contract. (An `entra` source
    has the same storage; only its endpoint's models differ.)"""

    filters = SOURCE_FILTERS
    sorts = SOURCE_SORTS

    @pytest.fixture
    def provider(self) -> ScimProvider:
        return schemas.scim_provider()

    @pytest.fixture
    def async_storage(self, harness: Harness, user_model: Any) -> SourceStorage:
        return source_storage(harness, SCIM_SOURCE, user_model)

    # Beyond the contract, whose searches at the root are not sorted: its rule that a storage
    # "filters, sorts and pages the resources of every given resource type as a single
    # collection" (scim2_server.storage.ScimStorage.search), for sorted ones.

    def create_root_population(
        self, storage: Any, types: list[ResourceType], models: list[Any]
    ) -> list[str]:
        """Three users, two groups; the ids of all five."""
        (user_type, group_type), (user_model, group_model) = types, models
        users = [
            storage.create(user_type, user_model(user_name=name, display_name=display))
            for name, display in (("alice", "Bravo"), ("bob", None), ("carol", "delta"))
        ]
        groups = [
            storage.create(group_type, group_model(display_name=name))
            for name in ("Alpha", "charlie")
        ]
        return [r.id for r in users + groups]

    @pytest.mark.parametrize("sort_order", ["ascending", "descending"])
    @pytest.mark.parametrize("sort_by", ["userName", "displayName", "meta.created", "emails"])
    def test_search_at_the_root_sorts_every_type_as_one_list(
        self,
        storage: Any,
        user_type: ResourceType,
        group_type: ResourceType,
        user_model: Any,
        group_model: Any,
        sort_by: str,
        sort_order: str,
    ) -> None:
        """Pages of a sorted search at the root follow SearchRequest.sort across the types:
        a type without the attribute (Groups have no userName), or that cannot sort by it
        (emails), has no value for it, so its resources count and come last when ascending,
        first when descending (RFC 7644 §3.4.2.1, §3.4.2.3)."""
        types, models = [user_type, group_type], [user_model, group_model]
        ids = self.create_root_population(storage, types, models)
        request = self.search_request(models, sort_by=sort_by, sort_order=sort_order)
        everything = self.search(storage, types, self.search_request(models)).resources
        expected = [request.sort_value(r) for r in request.sort(everything)]

        pages = [
            self.search(
                storage,
                types,
                self.search_request(
                    models, sort_by=sort_by, sort_order=sort_order, start_index=start, count=2
                ),
            )
            for start in (1, 3, 5)
        ]

        assert [page.total for page in pages] == [5, 5, 5]
        found = [r for page in pages for r in page.resources]
        assert [request.sort_value(r) for r in found] == expected
        assert sorted(r.id for r in found) == sorted(ids)

    def test_search_at_the_root_sorted_pages_through_a_bounded_window(
        self,
        storage: Any,
        user_type: ResourceType,
        group_type: ResourceType,
        user_model: Any,
        group_model: Any,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Types sorted by the same attribute are merged from their first results: a page
        past that window is refused as tooMany (RFC 7644 §3.12), a page past the end is
        empty."""
        types, models = [user_type, group_type], [user_model, group_model]
        self.create_root_population(storage, types, models)
        monkeypatch.setattr(scim.storage, "_MERGE_WINDOW", 2)

        def page(start: int) -> Any:
            request = self.search_request(models, sort_by="displayName", start_index=start, count=2)
            return self.search(storage, types, request)

        first = page(1)
        assert (first.total, [r.display_name for r in first.resources]) == (5, ["Alpha", "Bravo"])
        with pytest.raises(TooManyException):
            page(2)
        past_the_end = page(6)
        assert (past_the_end.total, past_the_end.resources) == (5, [])


def source_storage(harness: Harness, source: str, user_model: Any) -> SourceStorage:
    """The storage scim/app.py gives `source`'s endpoint, on the harness's runtime."""
    config = next(s for s in harness.runtime.config.sources if s.id == source)
    assert isinstance(config, ScimSource | EntraSource)
    return SourceStorage(
        harness.runtime.provisioning, source, user_model=user_model, hard_delete=config.hard_delete
    )


class AdminView(AsyncScimStorage):
    """The admin view's storage, whose users a `scim` source's client creates: the contract
    creates the users it reads, and the admin storage refuses every write."""

    def __init__(self, admin: AdminStorage, source: SourceStorage) -> None:
        self.admin = admin
        self.source = source

    async def get(
        self,
        resource_type: ResourceType,
        resource_id: str,
        *,
        response_parameters: ResponseParameters[Any] | None = None,
    ) -> Resource[Any]:
        return await self.admin.get(
            resource_type, resource_id, response_parameters=response_parameters
        )

    async def search(
        self,
        resource_types: list[ResourceType],
        search_request: SearchRequest[Any],
        *,
        position: Any = None,
    ) -> SearchPage:
        return await self.admin.search(resource_types, search_request, position=position)

    async def create(self, resource_type: ResourceType, resource: Resource[Any]) -> Resource[Any]:
        """The user as the admin view shows it, once the source's client has POSTed it."""
        model = cast(type[Resource[Any]], schemas.scim_provider().model_for("User"))
        sent = model.model_validate(resource.model_dump(scim_ctx=Context.RESOURCE_CREATION_REQUEST))
        created = await self.source.create(resource_type, sent)
        assert created.id is not None
        return await self.admin.get(resource_type, created.id)

    async def update(
        self,
        resource_type: ResourceType,
        resource: Resource[Any],
        *,
        expected_version: str | None = None,
    ) -> Resource[Any]:
        return await self.admin.update(resource_type, resource, expected_version=expected_version)

    async def delete(
        self, resource_type: ResourceType, resource_id: str, *, expected_version: str | None = None
    ) -> None:
        await self.admin.delete(resource_type, resource_id, expected_version=expected_version)


@leaving_out({**CURSOR_TESTS, **WRITE_TESTS, **GROUP_TESTS})
class TestAdminStorage(IdgateContract):
    """The admin view's storage: the contract's reads."""

    filters = ADMIN_FILTERS
    sorts = ADMIN_SORTS

    @pytest.fixture
    def provider(self) -> ScimProvider:
        return schemas.admin_provider()

    @pytest.fixture
    def async_storage(self, harness: Harness) -> AdminView:
        source_model = schemas.scim_provider().model_for("User")
        return AdminView(
            AdminStorage(harness.runtime.provisioning),
            source_storage(harness, SCIM_SOURCE, source_model),
        )

    def test_serves_users_only(self, provider: ScimProvider) -> None:
        """Instead of the tests of groups: the admin view has one resource type, User."""
        assert [t.id for t in provider.resource_types] == ["User"]

    @pytest.mark.parametrize("write", ["create", "update", "delete"])
    def test_writes_are_refused(
        self, storage: Any, user_type: ResourceType, user_model: Any, write: str
    ) -> None:
        """Instead of the tests of writes: each is a 405 allowing GET, and changes nothing."""
        (user,) = self.create_users(storage, user_type, user_model, "bjensen")
        admin = storage.storage.admin
        calls = {
            "create": lambda: admin.create(user_type, user_model(user_name="jsmith")),
            "update": lambda: admin.update(user_type, user, expected_version=user.meta.version),
            "delete": lambda: admin.delete(user_type, user.id),
        }

        with pytest.raises(MethodNotAllowedException) as refused:
            storage.run(calls[write]())

        assert (refused.value.status, refused.value.allowed) == (405, ["GET"])
        page = self.search(storage, [user_type], self.search_request([user_model]))
        assert [(r.user_name, r.meta.version) for r in page.resources] == [
            ("bjensen", user.meta.version)
        ]

    def test_sort_by_active_groups_the_statuses(
        self, storage: Any, user_type: ResourceType, user_model: Any
    ) -> None:
        """RFC 7644 §3.4.2.3: sorted by `active`, equal values come together, and descending
        is ascending reversed, whichever Boolean comes first."""
        self.create_search_users(storage, user_type, user_model)

        def ordered(order: str) -> list[bool]:
            request = self.search_request([user_model], sort_by="active", sort_order=order)
            return [r.active for r in self.search(storage, [user_type], request).resources]

        ascending = ordered("ascending")
        assert ascending in ([False, True, True, True], [True, True, True, False])
        assert ordered("descending") == ascending[::-1]
