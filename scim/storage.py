"""scim2-server's storage contract on idgate's store, through the provisioning service.

scim2-server handles the protocol (routing, validation, PATCH, ETags, projections, errors);
these classes are where it reads and writes. They translate, call the service in a thread
(the service blocks on the database and on argon2), and translate back. Domain errors become
SCIM errors here, in one table (`scim_error`).
"""

import heapq
from collections.abc import Callable, Iterator
from dataclasses import replace
from itertools import islice
from typing import Any, TypeVar

from scim2_models import (
    InvalidFilterException,
    InvalidValueException,
    NotFoundException,
    PreconditionFailedException,
    Resource,
    ResourceType,
    ResponseParameters,
    SCIMException,
    SearchRequest,
    TooManyException,
    UniquenessException,
)
from scim2_server.errors import MethodNotAllowedException
from scim2_server.storage import AsyncScimStorage, SearchPage
from starlette.concurrency import run_in_threadpool

from gateway.errors import IdgateError, InvalidInput, NameTaken, NotFound, VersionMismatch
from gateway.users.provisioning import EVERYTHING, Provisioning, Query
from scim import mapping
from scim.errors import store_error
from scim.filters import ADMIN_USERS, GROUPS, USERS, Translator
from scim.schemas import MAX_RESULTS

T = TypeVar("T")
_MAX_OFFSET = 2**31 - 1
#: A search sorted across resource types merges their first results here: at most this many
#: of each type (a page beyond them is refused as tooMany, RFC 7644 §3.12).
_MERGE_WINDOW = MAX_RESULTS
#: One resource type's query in a search, before its page is set.
_Share = tuple[ResourceType, Query]


def scim_error(exc: IdgateError) -> SCIMException:
    """The SCIM error for a domain error (RFC 7644 §3.12)."""
    match exc:
        case NotFound():
            return NotFoundException(detail=str(exc))
        case NameTaken():
            return UniquenessException(detail=str(exc))
        case VersionMismatch():
            return PreconditionFailedException(detail=str(exc))
        case InvalidInput(field="filter"):
            return InvalidFilterException(detail=exc.problem)
        case InvalidInput():
            return InvalidValueException(detail=str(exc))
    return InvalidValueException(detail=str(exc))


async def _call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return await run_in_threadpool(function, *args, **kwargs)
    except IdgateError as exc:
        raise scim_error(exc) from exc
    except Exception as exc:
        outage = store_error(exc)
        if outage is None:
            raise
        raise outage from exc


def _bounds(request: SearchRequest[Any]) -> tuple[int, int]:
    """The page a search asks for, as (offset, limit).

    RFC 7644 §3.4.2.4: startIndex below 1 is read as 1, a negative count as 0; a startIndex
    past any store's size is an empty page, not an integer the database cannot hold.
    """
    offset = min(max((request.start_index or 1) - 1, 0), _MAX_OFFSET)
    limit = max(request.count if request.count is not None else 100, 0)
    return offset, limit


def _query(translator: Translator, request: SearchRequest[Any], offset: int, limit: int) -> Query:
    query = _sorted(translator, request, _filtered(translator, request))
    return replace(query, offset=offset, limit=limit)


def _filtered(translator: Translator, request: SearchRequest[Any]) -> Query:
    """The search's filter, unsorted (InvalidFilterException: the translator refuses it)."""
    where = translator.filter(request.filter) if request.filter is not None else EVERYTHING
    return Query(where, descending=_descending(request))


def _sorted(translator: Translator, request: SearchRequest[Any], query: Query) -> Query:
    """`query` in the search's order (InvalidValueException: the translator refuses it)."""
    if request.sort_by is None:
        return query
    return replace(query, order=translator.sort(str(request.sort_by)))


def _descending(request: SearchRequest[Any]) -> bool:
    return request.sort_order == SearchRequest.SortOrder.descending


def _blocks(resource_types: list[ResourceType], request: SearchRequest[Any]) -> list[list[_Share]]:
    """The resource types' queries, grouped in the order their results follow each other.

    RFC 7644 §3.4.2.1: an attribute a resource type does not have matches none of its
    resources in a filter, and is no value to sort them by: they come last when ascending and
    first when descending, as resources without a value do (§3.4.2.3), and so do those of a
    type that cannot sort by it (as scim2-models' `SearchRequest.sort` orders them). The types
    that do sort by it form one block, whose results are merged.

    Raises:
        InvalidFilterException, InvalidValueException: the only type refuses the filter or
            the sort.
    """
    alone = len(resource_types) == 1
    ordered, unordered = list[_Share](), list[_Share]()
    for resource_type in resource_types:
        translator = GROUPS if resource_type.name == "Group" else USERS
        try:
            query = _filtered(translator, request)
        except (InvalidFilterException, InvalidValueException):
            if alone:
                raise
            continue
        try:
            query = _sorted(translator, request, query)
        except InvalidValueException:
            if alone:
                raise
        (ordered if query.order is not None else unordered).append((resource_type, query))
    head = [ordered] if ordered else []
    tail = [[share] for share in unordered]
    return tail + head if _descending(request) else head + tail


def _merged(
    request: SearchRequest[Any], pages: list[list[Resource[Any]]]
) -> Iterator[Resource[Any]]:
    """Resources of several types, each list in the store's order, as one list in that order."""

    def key(resource: Resource[Any]) -> tuple[bool, Any]:
        value = request.sort_value(resource)
        # "" is no value, as the store sorts it (RFC 7644 §3.4.2.2: `pr` wants a non-empty one).
        missing = value is None or value == ""
        return missing, None if missing else value

    return heapq.merge(*pages, key=key, reverse=_descending(request))


class SourceStorage(AsyncScimStorage):
    """One `scim` or `entra` source's Users and Groups."""

    def __init__(
        self,
        service: Provisioning,
        source_id: str,
        *,
        user_model: type[Resource[Any]],
        hard_delete: bool,
    ) -> None:
        self._service = service
        self._source = source_id
        self._user_model = user_model
        self._hard_delete = hard_delete

    async def get(
        self,
        resource_type: ResourceType,
        resource_id: str,
        *,
        response_parameters: ResponseParameters[Any] | None = None,
    ) -> Resource[Any]:
        if resource_type.name == "Group":
            group = await _call(self._service.get_group, self._source, resource_id)
            return mapping.group_resource(group)
        user = await _call(self._service.get_user, self._source, resource_id)
        return mapping.user_resource(user, self._user_model)

    async def search(
        self,
        resource_types: list[ResourceType],
        search_request: SearchRequest[Any],
        *,
        position: Any = None,
    ) -> SearchPage:
        # RFC 7644 §3.4.3: a search at the root covers every resource type, as one list.
        offset, limit = _bounds(search_request)
        total, found = 0, list[Resource[Any]]()
        for block in _blocks(resource_types, search_request):
            count, items = await self._block(
                block, search_request, max(offset - total, 0), limit - len(found)
            )
            total += count
            found += items
        return SearchPage(total, found)

    async def _block(
        self, block: list[_Share], request: SearchRequest[Any], offset: int, limit: int
    ) -> tuple[int, list[Resource[Any]]]:
        if len(block) == 1 or limit == 0:
            pages = [await self._page(t, replace(q, offset=offset, limit=limit)) for t, q in block]
            return sum(count for count, _ in pages), [r for _, items in pages for r in items]
        # The page is among each type's first offset + limit resources, merged.
        window = offset + limit
        fetch = min(window, _MERGE_WINDOW)
        pages = [await self._page(t, replace(q, offset=0, limit=fetch)) for t, q in block]
        total = sum(count for count, _ in pages)
        if offset >= total:
            return total, []
        if any(len(items) < min(window, count) for count, items in pages):
            raise TooManyException(
                detail=f"a search sorted across resource types reaches the first {fetch} "
                "resources of each; filter it, or search one resource type"
            )
        merged = _merged(request, [items for _, items in pages])
        return total, list(islice(merged, offset, window))

    async def _page(
        self, resource_type: ResourceType, query: Query
    ) -> tuple[int, list[Resource[Any]]]:
        if resource_type.name == "Group":
            groups = await _call(self._service.search_groups, self._source, query)
            return groups.total, [mapping.group_resource(g) for g in groups.items]
        users = await _call(self._service.search_users, self._source, query)
        return users.total, [mapping.user_resource(u, self._user_model) for u in users.items]

    async def create(self, resource_type: ResourceType, resource: Resource[Any]) -> Resource[Any]:
        if resource_type.name == "Group":
            group = await _call(
                self._service.create_group, self._source, mapping.group_input(resource)
            )
            return mapping.group_resource(group)
        user = await _call(self._service.create_user, self._source, mapping.user_input(resource))
        return mapping.user_resource(user, self._user_model)

    async def update(
        self,
        resource_type: ResourceType,
        resource: Resource[Any],
        *,
        expected_version: str | None = None,
    ) -> Resource[Any]:
        assert resource.id is not None  # scim2-server updates a resource it read
        version = mapping.version_of(expected_version)
        if resource_type.name == "Group":
            group = await _call(
                self._service.replace_group,
                self._source,
                resource.id,
                mapping.group_input(resource),
                expected_version=version,
            )
            return mapping.group_resource(group)
        user = await _call(
            self._service.replace_user,
            self._source,
            resource.id,
            mapping.user_input(resource),
            expected_version=version,
        )
        return mapping.user_resource(user, self._user_model)

    async def delete(
        self,
        resource_type: ResourceType,
        resource_id: str,
        *,
        expected_version: str | None = None,
    ) -> None:
        version = mapping.version_of(expected_version)
        if resource_type.name == "Group":
            await _call(
                self._service.delete_group, self._source, resource_id, expected_version=version
            )
            return
        await _call(
            self._service.delete_user,
            self._source,
            resource_id,
            expected_version=version,
            hard=self._hard_delete,
        )


class AdminStorage(AsyncScimStorage):
    """The admin view: every source's users, read-only (SPEC §7)."""

    def __init__(self, service: Provisioning) -> None:
        self._service = service

    async def get(
        self,
        resource_type: ResourceType,
        resource_id: str,
        *,
        response_parameters: ResponseParameters[Any] | None = None,
    ) -> Resource[Any]:
        return mapping.admin_resource(await _call(self._service.get_user, None, resource_id))

    async def search(
        self,
        resource_types: list[ResourceType],
        search_request: SearchRequest[Any],
        *,
        position: Any = None,
    ) -> SearchPage:
        query = _query(ADMIN_USERS, search_request, *_bounds(search_request))
        users = await _call(self._service.search_users, None, query)
        return SearchPage(users.total, [mapping.admin_resource(u) for u in users.items])

    async def create(self, resource_type: ResourceType, resource: Resource[Any]) -> Resource[Any]:
        raise _read_only()

    async def update(
        self,
        resource_type: ResourceType,
        resource: Resource[Any],
        *,
        expected_version: str | None = None,
    ) -> Resource[Any]:
        raise _read_only()

    async def delete(
        self, resource_type: ResourceType, resource_id: str, *, expected_version: str | None = None
    ) -> None:
        raise _read_only()


def _read_only() -> SCIMException:
    # Endpoint refuses these before any storage call; this is the second line.
    return MethodNotAllowedException(
        allowed=["GET"], detail="the admin view is read-only; change users through /admin"
    )
