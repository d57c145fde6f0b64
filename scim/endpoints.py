"""The SCIM endpoints: scim2-server's ASGI application, one per source and one admin view.

scim2-server serves the protocol; what is idgate's is here: the base URL each application
answers for, bearer tokens checked off the event loop, the 1 MiB body limit, PATCH answered
with the resource, Entra's dialect for `entra` sources, and the admin view refusing writes.

What the HTTP server hands over is bytes; scim2-server reads it as UTF-8 text, and a header
or a query that is not text would end its reading with a 500. `read_request` reads them
itself and answers with a SCIM error instead (RFC 7644 §3.12): 400 for a header that is not
text, the wrong-token 401 for an Authorization header that is not (no token can be one), 400
for a query parameter that is not UTF-8. Logs name the header or parameter, never its bytes.
"""

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, TypeVar, Union, cast
from urllib.parse import parse_qsl, quote

from pydantic import ValidationError
from scim2_models import BaseModel as ScimModel
from scim2_models import (
    Context,
    InvalidFilterException,
    InvalidSyntaxException,
    InvalidValueException,
    ListResponse,
    PatchOp,
    PayloadTooLargeException,
    Resource,
    ResourceType,
    ResponseParameters,
    SCIMException,
    ScimProvider,
    SearchRequest,
    UnauthorizedException,
)
from scim2_server.applications.asgi import ASGIApplication, Receive, Scope
from scim2_server.errors import MethodNotAllowedException
from scim2_server.handler import AsyncScimHandler
from scim2_server.requests import ScimRequest
from scim2_server.responses import ScimResponse
from scim2_server.routing import Operation
from scim2_server.service import ScimService, scim_exception_of
from scim2_server.storage import AsyncScimStorage
from scim2_server.utils import parametrize
from starlette.concurrency import run_in_threadpool

from gateway.auth.tokens import BearerTokens
from gateway.engine.roles import Permission
from gateway.errors import PermissionDenied
from scim import entra
from scim.schemas import MAX_BODY_BYTES

ModelT = TypeVar("ModelT", bound=ScimModel)

log = logging.getLogger(__name__)

#: Checks a bearer token; returns the request's subject, or None when the token is not valid.
TokenCheck = Callable[[str], Awaitable[Any]]
#: Told of every answered request: endpoint name, method, HTTP status, seconds.
RequestRecorder = Callable[[str, str, int, float], None]


class IdgateService(ScimService):
    """scim2-server's service with idgate's answers where RFC 7644 lets the server choose."""

    def __init__(self, provider: ScimProvider) -> None:
        super().__init__(provider)
        # pydantic and scim2-models cache the classes a generic is parametrized with in weak
        # dictionaries: without a reference of our own, every request rebuilt the ListResponse
        # and SearchRequest classes (their schemas included) once the cache let them go.
        models = tuple(self.get_models())
        self._parametrized: list[type[Any]] = [
            parametrize(ListResponse, Union[models]),  # noqa: UP007 - a runtime Union
            parametrize(SearchRequest, Union[models]),  # noqa: UP007
            *(parametrize(SearchRequest, Union[(model,)]) for model in models),  # noqa: UP007
            *(parametrize(PatchOp, model) for model in models),
        ]

    def publish(self, base_url: str, resource: Resource[Any]) -> Resource[Any]:
        """The resource as sent to the client: its location, and URLs for its references.

        scim2-server copies the resource first, since a storage may hand out the object it
        keeps; idgate's storages build every resource afresh from the store (`scim.mapping`),
        so it is changed in place.
        """
        assert resource.meta is not None and resource.id is not None
        location = self.resource_location(
            base_url, self.get_resource_type_of(resource), resource.id
        )
        resource.meta = resource.meta.model_copy(update={"location": location})
        self._publish_references(base_url, resource)
        return resource

    def read_body(
        self, model: type[ModelT], body: bytes, content_type: str | None, scim_ctx: Context
    ) -> ModelT:
        # RFC 7643 §3 and RFC 7644 §3.5.2: "schemas" is REQUIRED in every resource and PatchOp
        # (scim2-models takes a body without it).
        data = self.decode_body(body, content_type)
        if not isinstance(data, dict) or not _has_schemas(data):
            raise InvalidSyntaxException(detail='the body needs a non-empty "schemas" list')
        try:
            return model.model_validate(data, scim_ctx=scim_ctx)
        except ValidationError as exception:
            raise scim_exception_of(exception) from exception

    def creation_with(
        self,
        base_url: str,
        created: Resource[Any],
        response_parameters: ResponseParameters[Any],
    ) -> ScimResponse:
        """The 201 of a creation, with `attributes`/`excludedAttributes` honoured
        (RFC 7644 §3.9 applies them to POST too; scim2-server's creation_response ignores them)."""
        resource = self.publish(base_url, created)
        assert resource.meta is not None and resource.meta.location is not None
        result = self.resource_response(
            resource,
            Context.RESOURCE_CREATION_RESPONSE,
            response_parameters,
            status=HTTPStatus.CREATED,
        )
        result.headers["Location"] = resource.meta.location
        return result

    def max_body_size(self, request: ScimRequest) -> int | None:
        limit = super().max_body_size(request)
        return MAX_BODY_BYTES if limit is None else limit

    def patch_response(
        self,
        base_url: str,
        resource: Resource[Any],
        response_parameters: ResponseParameters[Any],
    ) -> ScimResponse:
        # RFC 7644 §3.5.2: 200 with the resource, which Entra ID and most clients expect,
        # rather than the 204 the server may choose.
        return self.resource_response(
            self.publish(base_url, resource),
            Context.RESOURCE_REPLACEMENT_RESPONSE,
            response_parameters,
        )


class EntraService(IdgateService):
    """Entra ID's dialect rewritten before scim2-models validates it (`scim.entra`)."""

    def read_patch(
        self, resource_type: ResourceType, body: bytes, content_type: str | None
    ) -> "PatchOp[Any]":
        rewritten = entra.patch_body(self.decode_body(body, content_type))
        return super().read_patch(resource_type, json.dumps(rewritten).encode(), content_type)

    def read_search_query(
        self, resource_types: list[ResourceType], query: Any
    ) -> tuple[SearchRequest[Any], Any]:
        if isinstance(query.get("filter"), str):
            query = {**query, "filter": entra.filter_text(query["filter"])}
        return super().read_search_query(resource_types, query)


def _has_schemas(data: dict[str, Any]) -> bool:
    schemas = next((v for k, v in data.items() if k.casefold() == "schemas"), None)
    return isinstance(schemas, list) and bool(schemas) and all(isinstance(s, str) for s in schemas)


class IdgateHandler(AsyncScimHandler):
    """scim2-server's handler; a creation answers with the attributes the client asked for."""

    service: IdgateService

    async def create(self, request: ScimRequest) -> ScimResponse:
        with self.service.provider:
            target = self.service.route(request, Operation.create)
            resource_type = self.service.resource_type_at(cast(str, target.endpoint))
            self.service.authorize(request, target, resource_type)
            parameters = self.service.read_response_parameters(resource_type, request.query)
            resource = self.service.read_creation(
                resource_type, request.body, request.header("Content-Type")
            )
            async with self.storage.operation():
                created = await self.storage.create(resource_type, resource)
            return self.service.creation_with(request.base_url, created, parameters)


class EntraHandler(IdgateHandler):
    async def patch(self, request: ScimRequest) -> ScimResponse:
        if not _empty_operations(request.body):
            return await super().patch(request)
        # Entra ID sends a PATCH with no operations (Known issues: "empty Operations"); RFC 7644
        # §3.5.2 asks for one or more. Nothing changes: answer the resource as it is.
        with self.service.provider:
            target = self.service.route(request, Operation.patch)
            resource_type = self.service.resource_type_at(cast(str, target.endpoint))
            self.service.authorize(request, target, resource_type)
            parameters = self.service.read_response_parameters(resource_type, request.query)
            async with self.storage.operation():
                resource = await self.storage.get(resource_type, cast(str, target.resource_id))
            self.service.check_preconditions(
                resource, "PATCH", self.service.read_conditions(request)
            )
            return self.service.patch_response(request.base_url, resource, parameters)


def _empty_operations(body: bytes) -> bool:
    try:
        decoded = json.loads(body or b"null")
    except ValueError:
        return False
    return isinstance(decoded, dict) and any(
        key.casefold() == "operations" and value == [] for key, value in decoded.items()
    )


class UnreadableHeader(SCIMException):
    """A header whose name or value is not text: 400 Bad Request (RFC 9110 §15.5.1).

    No scimType: RFC 7644 §3.12 makes it optional, and none of Table 9 fits. invalidSyntax is
    "the request body message structure", for the bodies of POST and PUT; invalidValue is a
    value of an attribute or an operation. A header is neither, and is refused on a GET of
    /ServiceProviderConfig too.
    """

    status = 400
    _default_detail = "a header is not text (RFC 9110 §5.5)"


@dataclass
class WireRequest(ScimRequest):
    """A SCIM request and what its reading refused, answered before anything else is read."""

    refusal: SCIMException | None = None


#: RFC 9110 §5.1: a field name is a token.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: RFC 9110 §5.5: field content is visible characters, SP and HTAB; CR, LF and NUL are
#: "invalid and dangerous", and no other control character is content either.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _header_text(value: bytes) -> str | None:
    """A field value as text, or None when it is not UTF-8 or holds a control character.

    RFC 9110 §5.5 lets a recipient keep obs-text (octets 0x80-0xFF) as opaque data; idgate
    reads every header it uses as text, so it refuses what it cannot read rather than guess
    the octets' charset.
    """
    try:
        text = value.decode()
    except UnicodeDecodeError:
        return None
    return None if _CONTROL.search(text) else text


def _split_headers(
    raw: Iterable[tuple[bytes, bytes]],
) -> tuple[list[tuple[bytes, bytes]], list[str | None]]:
    """The headers that are text, and the (lower-case) names of those that are not: None for
    a name that is not even a token."""
    kept: list[tuple[bytes, bytes]] = []
    unreadable: list[str | None] = []
    for name, value in raw:
        if not _TOKEN.fullmatch(name):
            unreadable.append(None)
        elif _header_text(value) is None:
            unreadable.append(name.decode("ascii").lower())
        else:
            kept.append((name, value))
    return kept, unreadable


def _unreadable(name: str | None) -> str:
    """What is wrong with a header, naming it (never showing its bytes)."""
    if name is None:
        return "a header's name is not a token (RFC 9110 §5.1)"
    return f"the {name} header is not text (RFC 9110 §5.5)"


def _text_query(raw: bytes) -> tuple[dict[str, str], SCIMException | None]:
    """The query's parameters, and the error for one whose name or value is not UTF-8.

    Percent-decoded as scim2-server does (`parse_qsl`), but strictly: a `%E9` or a raw 0xE9
    byte is not read as U+FFFD, which would search for a value the client never sent. The
    filter's error is invalidFilter, any other parameter's invalidValue (RFC 7644 §3.12).
    """
    query: dict[str, str] = {}
    # Read as Latin-1, every octet (raw or percent-encoded) is one character: re-encoded, the
    # octets the client sent, then decoded as UTF-8.
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True, encoding="latin-1")
    for name, value in pairs:
        try:
            text_name = name.encode("latin-1").decode()
        except UnicodeDecodeError:
            return query, InvalidValueException(detail="a query parameter's name is not UTF-8")
        try:
            query[text_name] = value.encode("latin-1").decode()
        except UnicodeDecodeError:
            detail = f"the {text_name[:64]!r} parameter is not UTF-8"
            if text_name == "filter":
                return query, InvalidFilterException(detail=detail)
            return query, InvalidValueException(detail=detail)
    return query, None


class Endpoint(ASGIApplication):
    """One SCIM service root: a source's provisioning endpoint, or the admin view."""

    def __init__(
        self,
        storage: AsyncScimStorage,
        provider: ScimProvider,
        service: ScimService,
        *,
        check_token: TokenCheck,
        public_base_url: str | None,
        name: str,
        record: RequestRecorder | None = None,
        handler: type[IdgateHandler] = IdgateHandler,
        read_only: bool = False,
    ) -> None:
        super().__init__(storage, provider, service)
        self.handler = handler(self.service, storage)
        self._check_token = check_token
        self._public_base_url = public_base_url.rstrip("/") if public_base_url else None
        self._read_only = read_only
        self._name = name
        self._record = record

    async def serve(self, request: ScimRequest) -> ScimResponse:
        started = time.perf_counter()
        response = await super().serve(request)
        if self._record is not None:
            elapsed = time.perf_counter() - started
            self._record(self._name, request.method, int(response.status), elapsed)
        return response

    async def read_request(self, scope: Scope, receive: Receive) -> ScimRequest:
        headers, unreadable = _split_headers(scope["headers"])
        query, refusal = _text_query(scope["query_string"])
        request = await super().read_request(
            {**scope, "headers": headers, "query_string": b""}, receive
        )
        request.query = query
        # Mounted under /scim/v2/...: the mount's path is the service root (scim2-server's own
        # base URL would add a /v2 of its own).
        root_path = scope.get("root_path", "")
        if self._public_base_url:
            request.base_url = f"{self._public_base_url}{root_path}"
        else:
            host = dict(headers).get(b"host", b"").decode() or "{}:{}".format(*scope["server"])
            request.base_url = f"{scope['scheme']}://{host}{root_path}"
        for name in unreadable:
            log.info("SCIM %s: %s", self._name, _unreadable(name))
        # An Authorization header that is not text holds no token: it is dropped, and the
        # request is answered as one with a wrong token (RFC 6750 §3.1), the same 401.
        others = [name for name in unreadable if name != "authorization"]
        if others and refusal is None:
            refusal = UnreadableHeader(detail=_unreadable(others[0]))
        return WireRequest(**vars(request), refusal=refusal)

    def finalize_response(self, request: ScimRequest, response: ScimResponse) -> ScimResponse:
        response = super().finalize_response(request, response)
        # scim2-server answers every request with `Location: <the request's URL>`, whose path
        # is percent-decoded: a `%00` or `%0a` in it would be a control character in a header
        # (RFC 9110 §5.5), which the HTTP server refuses to send, dropping the connection.
        for name in ("Location", "Content-Location"):
            if name in response.headers:
                response.headers[name] = quote(response.headers[name], safe=_URL_SAFE)
        return response

    async def dispatch_request(self, request: ScimRequest) -> ScimResponse:
        if isinstance(request, WireRequest) and request.refusal is not None:
            raise request.refusal
        if len(request.body) > MAX_BODY_BYTES:
            raise PayloadTooLargeException(detail=f"the body exceeds {MAX_BODY_BYTES} bytes")
        if self._read_only and not _reads(self.service, request):
            raise MethodNotAllowedException(allowed=["GET"], detail="the admin view is read-only")
        if self.needs_auth(request):
            scheme, _, token = (request.header("Authorization") or "").partition(" ")
            subject = None
            if scheme.casefold() == "bearer" and token.strip():
                subject = await self._check_token(token.strip())
            if subject is None:
                raise UnauthorizedException(detail="a valid bearer token is required")
            request.subject = subject
        return await self.handler.handle(request)


#: What `quote` leaves alone in a header's URL: RFC 3986's reserved characters and `%`
#: (the URL's own escapes); controls, spaces and non-ASCII are percent-encoded.
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~"


def _reads(service: ScimService, request: ScimRequest) -> bool:
    try:
        operation = service.match(request).operation
    except SCIMException:  # an unknown path: the handler answers it with its own 404
        return True
    return operation not in (
        Operation.create,
        Operation.replace,
        Operation.patch,
        Operation.delete,
        Operation.bulk,
    )


def source_token_check(tokens: BearerTokens, source_id: str) -> TokenCheck:
    """The check of one source's bearer token: a token seen before costs a dict look-up, a new
    one an argon2 verification in a thread (never on the event loop)."""

    async def check(token: str) -> Any:
        if tokens.known(token) == f"source:{source_id}":
            return source_id
        ok = await run_in_threadpool(tokens.verify_source, source_id, token)
        return source_id if ok else None

    return check


def admin_token_check(tokens: BearerTokens) -> TokenCheck:
    """The check of an administrator's token; both roles may read the admin view (SPEC §4.4)."""

    async def check(token: str) -> Any:
        actor = tokens.known_admin(token) or await run_in_threadpool(tokens.verify_admin, token)
        if actor is None:
            return None
        try:
            actor.require(Permission.VIEW_USERS)
        except PermissionDenied:
            return None
        return actor

    return check


def not_found_body(detail: str) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": str(int(HTTPStatus.NOT_FOUND)),
        "detail": detail,
    }
