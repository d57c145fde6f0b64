"""Generated hostile input against a real `idgate serve` on its SCIM front (RFC 7644 §3.4.2,
§3.5, §3.12; SPEC §7), on SQLite and, when IDGATE_TEST_DATABASE_URL is set, on PostgreSQL (a
schema of its own): NUL and the other control characters must get the same answers on both.

Hypothesis draws batches of requests: filters from the grammar (every operator, values with
quotes, backslashes, unicode and NUL, and/or/not, value paths, cut short), filters of a
modelled subset (values with escaped NUL and controls), filters with a raw control character,
JSON bodies (User and PatchOp shapes with generated values and wrong types, arbitrary JSON,
bytes that are not JSON, users whose strings hold controls), generated ids and paths (with
percent-encoded controls and octets that are not UTF-8), methods, query parameters (startIndex,
count, sortBy, sortOrder, attributes, excludedAttributes), and headers whose bytes are or are
not UTF-8 (User-Agent, Host, Content-Type, If-Match, Authorization, ...;
`tests.resilience.scim_fuzz_support`).

Invariants:
- never a 5xx; every 4xx is a SCIM Error (`schemas` [Error], `status` the HTTP status as a
  string) with the scimType RFC 7644 §3.12 gives that failure: invalidFilter for a filter,
  invalidSyntax/invalidValue (or the PATCH-specific types) for a body, invalidValue for a
  query parameter;
- a filter of the modelled subset (eq/ne/co/sw/ew/pr on userName and displayName, active
  eq/ne, and/or/not) finds exactly the seeded users a Python model says: no value, however
  quoted or escaped, widens the result, and one with NUL matches nothing;
- a raw control character in a filter is 400 invalidFilter;
- a user whose strings hold NUL is 400 invalidValue; one whose strings hold other controls is
  201, and a read gives every value back as sent;
- a header that is not text is 400 with no scimType, naming it; an Authorization header of
  its own (text or not) is never let in;
- after each batch the process runs and answers a known-good search rightly.

Writes go to a source of their own (`scratch`): the modelled source (`fz`) is only read, and
at the end it still holds exactly its seeded users (a source's token reaches no other).

Cases: `IDGATE_FUZZ_CASES` (default `DEFAULT_CASES`, for CI); the long run is
`IDGATE_FUZZ_CASES=100000 .venv/bin/python -m pytest tests/resilience/test_scim_fuzz.py`.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given, seed
from hypothesis import strategies as st

from tests.ldapproxy.conftest import running
from tests.resilience.fuzz_support import (
    ModelTree,
    fuzz_cases,
    fuzz_seed,
    fuzz_settings,
    model_matches,
    scim_filters,
    scim_model_filters,
    texts,
)
from tests.resilience.scim_fuzz_support import (
    NEUTRAL_HEADERS,
    control_ids,
    control_texts,
    has_nul,
    header_sets,
    is_text,
    known_user_bodies,
    raw_control_filters,
)
from tests.resilience.support import FullGateway, fresh_pg_schema, scim_client, scim_source

# One worker runs the whole module: its servers are module-scoped (pytest-xdist loadgroup).
pytestmark = pytest.mark.xdist_group("scim_fuzz")

DEFAULT_CASES = 3000
BATCH = 20
CASES = fuzz_cases(DEFAULT_CASES)
TIMEOUT = max(120, int(CASES * 0.02) + 60)
PG_URL = os.environ.get("IDGATE_TEST_DATABASE_URL")

MODELLED, MODELLED_TOKEN = "fz", "scim-fuzz-modelled-token-0123456789"
SCRATCH, SCRATCH_TOKEN = "scratch", "scim-fuzz-scratch-token-0123456789"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"

#: The modelled source's users: names with the characters a filter value must not escape.
SEEDED: list[dict[str, Any]] = [
    {"userName": "alice", "displayName": "Alice Liddell", "active": True},
    {"userName": "bob", "displayName": 'Bob "the" Builder', "active": False},
    {"userName": "carol\\x", "displayName": "Carol\\Danvers", "active": True},
    {"userName": "dave%_", "displayName": "Dave_100%", "active": True},
    {"userName": "émile", "displayName": "ÉMILE Zola", "active": True},
    {"userName": "o'neil", "displayName": "O'Neil (ops) or x", "active": False},
    {"userName": "star*", "displayName": "*", "active": True},
    {"userName": "\uff41lice", "displayName": "Stra\u00dfe", "active": True},
    {"userName": "nodisplay", "active": True},
]

#: RFC 7644 §3.12 scimTypes by status; 400 must carry one (every 400 here has a defined cause).
SCIM_TYPES = {
    400: {
        "invalidFilter", "invalidSyntax", "invalidValue", "invalidPath", "noTarget",
        "mutability", "tooMany", "invalidVers", "sensitive",
    },
    409: {"uniqueness"},
}  # fmt: skip
#: A query parameter's failure: RFC 7644 §3.4.2 parameters are values, §3.10 attribute paths.
PARAMETER_TYPES = {"invalidValue", "invalidPath", "invalidFilter", "invalidSyntax"}


@dataclass
class Tally:
    requests: int = 0
    modelled: int = 0
    unreadable: int = 0  # answers to a header that is not text
    known: int = 0  # writes whose values were read back
    statuses: dict[int, int] = field(default_factory=dict)

    def count(self, status: int) -> None:
        self.requests += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1


@dataclass(frozen=True)
class Request:
    """One generated request: where it goes, and what the answer may be."""

    source: str  # MODELLED (reads only) or SCRATCH
    method: str
    path: str
    params: dict[str, str]
    body: bytes | None
    #: The scimTypes a 400 may carry (None: any of SCIM_TYPES[400]).
    types: frozenset[str] | None = None
    model: ModelTree | None = None  # a filter whose result the model knows
    #: The one status the answer must have (None: any, by the other invariants).
    status: int | None = None
    #: Attributes the answer and a later read must give back as sent (a write that succeeds).
    known: dict[str, Any] | None = None
    #: Headers sent over the client's own (name, value), UTF-8 or not.
    headers: tuple[tuple[str, bytes], ...] = ()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def gateway(request: pytest.FixtureRequest) -> Iterator[FullGateway]:
    sources = [scim_source(MODELLED, MODELLED_TOKEN), scim_source(SCRATCH, SCRATCH_TOKEN)]
    if request.param == "sqlite":
        yield from running(FullGateway(sources))
        return
    if not PG_URL:
        pytest.skip("IDGATE_TEST_DATABASE_URL is not set: the PostgreSQL fuzz run is not run")
    with fresh_pg_schema(PG_URL) as url:
        yield from running(FullGateway(sources, store_url=url))


@pytest.fixture(scope="module")
def seeded(gateway: FullGateway) -> dict[str, str]:
    """userName -> id of the modelled source's users; `scratch` gets a few to write on."""
    ids = {}
    with scim_client(gateway, MODELLED, MODELLED_TOKEN) as client:
        for user in SEEDED:
            created = client.post("/Users", json={"schemas": [USER], **user})
            assert created.status_code == 201, created.text
            ids[user["userName"]] = created.json()["id"]
    with scim_client(gateway, SCRATCH, SCRATCH_TOKEN) as client:
        for name in ("target1", "target2", "target3"):
            created = client.post("/Users", json={"schemas": [USER], "userName": name})
            assert created.status_code == 201, created.text
            ids[name] = created.json()["id"]
    return ids


# -- strategies -----------------------------------------------------------------------------


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts(16),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts(8), inner, max_size=4),
    max_leaves=10,
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
    texts(20), st.lists(texts(6), max_size=2), st.dictionaries(texts(6), texts(6), max_size=2),
)  # fmt: skip
USER_ATTRIBUTES = [
    "userName", "displayName", "active", "password", "externalId", "id", "name", "emails",
    "phoneNumbers", "nickName", "title", "meta", "groups", "schemas", "userType", "locale",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "x",
]  # fmt: skip
user_bodies = st.builds(
    lambda name, extra, schemas: {"schemas": schemas, "userName": name, **extra},
    st.one_of(texts(24), scalars),
    st.dictionaries(st.sampled_from(USER_ATTRIBUTES), scalars, max_size=4),
    st.one_of(st.just([USER]), st.just([USER, "urn:x"]), st.lists(texts(10), max_size=2)),
)
PATCH_PATHS = [
    "userName", "displayName", "active", "emails", 'emails[type eq "work"].value', "name",
    "name.givenName", "id", "meta.created", "groups", "password", "x", "emails[", "",
    'emails[value co "\\""]', "urn:ietf:params:scim:schemas:core:2.0:User:displayName",
]  # fmt: skip
patch_operations = st.fixed_dictionaries(
    {
        "op": st.one_of(
            st.sampled_from(["add", "replace", "remove", "Add", "REPLACE", "x"]), scalars
        )
    },
    optional={
        "path": st.one_of(st.sampled_from(PATCH_PATHS), texts(16), scalars),
        "value": st.one_of(scalars, user_bodies),
    },
)
patch_bodies = st.builds(
    lambda operations, schemas: {"schemas": schemas, "Operations": operations},
    st.one_of(st.lists(patch_operations, max_size=3), scalars),
    st.one_of(st.just([PATCH_OP]), st.lists(texts(10), max_size=2)),
)
bodies = st.one_of(
    user_bodies.map(_json_bytes),
    patch_bodies.map(_json_bytes),
    json_values.map(_json_bytes),
    st.binary(max_size=64),
    texts(40).map(lambda t: t.encode("utf-8", "surrogatepass")),
)

ids = st.one_of(
    texts(24),
    st.uuids().map(str),
    st.sampled_from(
        [
            "",
            ".",
            "..",
            "%2e%2e",
            "%00",
            "%2F",
            "x%20y",
            "%0a",
            "a%0d%0ab",
            "%7f",
            "*",
            "'--",
            "\\x00",
        ]
    ),
    control_ids,
)
PATHS = [
    "/Users", "/Groups", "/Users/.search", "/.search", "/ServiceProviderConfig", "/Schemas",
    "/ResourceTypes", "/Me", "/Bulk", "/Users/", "//Users", "/users", "/Schemas/" + USER,
    "/ResourceTypes/User", "/Users/.search/x",
]  # fmt: skip
paths = st.one_of(
    st.sampled_from(PATHS),
    st.builds(lambda kind, i: f"/{kind}/{i}", st.sampled_from(["Users", "Groups"]), ids),
    texts(20).map(lambda t: "/" + t),
)
SORT_BY = ["userName", "displayName", "meta.created", "emails", "x", "", "userName)", "id"]
parameter_values = st.one_of(
    st.integers(-5, 5).map(str),
    st.sampled_from(["0", "-1", "2147483648", "99999999999999999999", "1e3", "1.5", " 1", "x"]),
    texts(12),
    control_texts,
    st.builds(lambda a, b: a + b, st.sampled_from(SORT_BY), control_texts),
)
query_parameters = st.dictionaries(
    st.sampled_from(
        ["startIndex", "count", "sortBy", "sortOrder", "attributes", "excludedAttributes"]
    ),
    st.one_of(
        parameter_values,
        st.sampled_from(
            [*SORT_BY, "ascending", "descending", "userName,displayName", "emails.value"]
        ),
    ),
    max_size=3,
)
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def _filter_request(text: str, params: dict[str, str], as_search: bool) -> Request:
    if as_search:
        body = _json_bytes({"schemas": [SEARCH], "filter": text})
        return Request(MODELLED, "POST", "/Users/.search", {}, body, frozenset({"invalidFilter"}))
    return Request(MODELLED, "GET", "/Users", {**params, "filter": text}, None, PARAMETER_TYPES)


def _known_patch(value: str) -> Request:
    body = _json_bytes(
        {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "title", "value": value}]}
    )
    if "\x00" in value:
        return Request(
            SCRATCH, "PATCH", "/Users/{target3}", {}, body, frozenset({"invalidValue"}), status=400
        )
    return Request(
        SCRATCH, "PATCH", "/Users/{target3}", {}, body, status=200, known={"title": value}
    )


def _known_creation(user: dict[str, Any]) -> Request:
    body = _json_bytes(user)
    if has_nul(user):
        return Request(SCRATCH, "POST", "/Users", {}, body, frozenset({"invalidValue"}), status=400)
    known = {key: value for key, value in user.items() if key != "schemas"}
    return Request(SCRATCH, "POST", "/Users", {}, body, status=201, known=known)


def _raw_control_filter(text: str, as_search: bool) -> Request:
    if as_search:
        body = _json_bytes({"schemas": [SEARCH], "filter": text})
        return Request(
            MODELLED, "POST", "/Users/.search", {}, body, frozenset({"invalidFilter"}), status=400
        )
    return Request(
        MODELLED, "GET", "/Users", {"filter": text}, None, frozenset({"invalidFilter"}), status=400
    )


plain_requests = st.one_of(
    # Grammar filters: a 200 or an invalidFilter (or a parameter's own invalidValue).
    st.builds(_filter_request, scim_filters, query_parameters, st.booleans()),
    # Modelled filters: exactly the model's users.
    st.builds(
        lambda f, as_search: Request(
            MODELLED,
            "POST" if as_search else "GET",
            "/Users/.search" if as_search else "/Users",
            {} if as_search else {"filter": f[0], "count": "1000"},
            _json_bytes({"schemas": [SEARCH], "filter": f[0], "count": 1000})
            if as_search
            else None,
            frozenset(),
            f[1],
        ),
        scim_model_filters,
        st.booleans(),
    ),
    # Bodies: on the scratch source, on its collection and on one of its users.
    st.builds(
        lambda method, target, body: Request(SCRATCH, method, target, {}, body),
        st.sampled_from(["POST", "PUT", "PATCH", "POST"]),
        st.sampled_from(["/Users", "/Users/{target1}", "/Users/{target2}", "/Users/.search"]),
        bodies,
    ),
    # Anything anywhere: reads on the modelled source, every method on scratch.
    st.builds(
        lambda path, params: Request(MODELLED, "GET", path, params, None, PARAMETER_TYPES),
        paths,
        query_parameters,
    ),
    st.builds(
        lambda method, path, params, body: Request(SCRATCH, method, path, params, body),
        st.sampled_from(METHODS),
        paths,
        query_parameters,
        st.none() | bodies,
    ),
    # Control characters: raw in a filter (refused), in a user's strings (NUL refused, the
    # others kept as sent).
    st.builds(_raw_control_filter, raw_control_filters, st.booleans()),
    known_user_bodies.map(_known_creation),
    control_texts.map(_known_patch),
)
#: Any of them, sometimes with headers of its own (whose bytes may not be UTF-8).
requests = st.one_of(
    plain_requests,
    st.builds(
        lambda request, headers: replace(request, headers=tuple(headers.items())),
        plain_requests,
        header_sets,
    ),
)


# -- checks ---------------------------------------------------------------------------------


class Runner:
    def __init__(self, gateway: FullGateway, ids: dict[str, str]) -> None:
        self.clients = {
            MODELLED: scim_client(gateway, MODELLED, MODELLED_TOKEN),
            SCRATCH: scim_client(gateway, SCRATCH, SCRATCH_TOKEN),
        }
        self.ids = ids
        self.tally = Tally()
        self.log_tail = gateway.log_tail

    def close(self) -> None:
        for client in self.clients.values():
            client.close()

    def send(self, request: Request) -> None:
        path = request.path
        for target in ("target1", "target2", "target3"):
            path = path.replace("{" + target + "}", self.ids[target])
        path = quote(path, safe="/%")
        client = self.clients[request.source]
        shown = (request.method, path, request.params, (request.body or b"")[:300], request.headers)
        try:
            response = client.request(
                request.method,
                path,
                params=request.params,
                content=request.body,
                headers=dict(request.headers),
            )
        except httpx.TransportError as exc:
            raise AssertionError(f"no answer to {shown}: {exc!r}\n{self.log_tail()}") from exc
        self.tally.count(response.status_code)
        # RFC 7644 §3.11, §3.7: a provider without /Me or /Bulk answers 501 Not Implemented.
        unsupported = response.status_code == 501 and path.split("/")[1:2] in (["Me"], ["Bulk"])
        assert response.status_code < 500 or unsupported, (shown, response.text[:1000])
        names = {name.lower() for name, _ in request.headers}
        unreadable = sorted(
            name.lower()
            for name, value in request.headers
            if name.lower() != "authorization" and not is_text(value)
        )
        if unreadable:
            self.check_unreadable(request, response, unreadable, shown)
            return
        if "authorization" in names:
            self.check_refused_token(path, response, shown)
            return
        if not names <= NEUTRAL_HEADERS:
            # A Content-Type, Accept or If-Match of its own (text) has answers of its own
            # (415, 406, 412, ...): only the general invariants hold.
            request = replace(request, types=None, status=None, known=None, model=None)
        if request.status is not None:
            assert response.status_code == request.status, (shown, response.text[:1000])
        if response.status_code >= 400:
            self.check_error(request, response, shown)
        elif request.known is not None:
            self.check_known(request.known, response, shown)
        if request.model is not None:
            self.check_model(request.model, response, shown)

    def check_unreadable(
        self, request: Request, response: httpx.Response, names: list[str], shown: Any
    ) -> None:
        """RFC 9110 §5.5, RFC 7644 §3.12: 400 with no scimType, naming a header (not its bytes).
        A 404 comes from a path no SCIM endpoint is mounted on (a decoded line break)."""
        self.tally.unreadable += 1
        status = response.status_code
        assert status in (400, 404), (shown, response.text[:1000])
        if request.method == "HEAD":
            return
        body = response.json()
        assert body.get("schemas") == [ERROR] and body.get("status") == str(status), (shown, body)
        if status == 400:
            assert "scimType" not in body, (shown, body)
            assert any(f"the {name} header" in body["detail"] for name in names), (shown, body)

    def check_refused_token(self, path: str, response: httpx.Response, shown: Any) -> None:
        """An Authorization header of the request's own is no valid token, text or not: no
        success but on /ServiceProviderConfig (RFC 7643 §5), and a 401 is the wrong token's."""
        status = response.status_code
        assert not 200 <= status < 300 or "ServiceProviderConfig" in path, (shown, status)
        if status == 401:
            assert response.headers["www-authenticate"].startswith("Bearer"), shown
            if response.request.method != "HEAD":
                assert response.json()["detail"] == "a valid bearer token is required", shown

    def check_known(self, known: dict[str, Any], response: httpx.Response, shown: Any) -> None:
        """The values a write sent, in its answer and in a later read (the stored document)."""
        self.tally.known += 1
        answer = response.json()
        again = self.clients[SCRATCH].get(f"/Users/{answer['id']}")
        assert again.status_code == 200, (shown, again.text[:1000])
        for resource in (answer, again.json()):
            assert {key: resource.get(key) for key in known} == known, (shown, resource)

    def check_error(self, request: Request, response: httpx.Response, shown: Any) -> None:
        status = response.status_code
        if request.method == "HEAD":
            return  # no body (RFC 9110 §9.3.2)
        assert response.headers.get("content-type", "").startswith("application/scim+json"), (
            shown,
            response.headers,
        )
        body = response.json()
        assert body.get("schemas") == [ERROR], (shown, body)
        assert body.get("status") == str(status), (shown, body)
        scim_type = body.get("scimType")
        if status == 400:
            allowed = request.types if request.types is not None else SCIM_TYPES[400]
            assert scim_type in allowed, (shown, body)
        elif status in SCIM_TYPES:
            assert scim_type in SCIM_TYPES[status], (shown, body)
        else:
            assert scim_type is None, (shown, body)

    def check_model(self, tree: ModelTree, response: httpx.Response, shown: Any) -> None:
        self.tally.modelled += 1
        assert response.status_code == 200, (shown, response.text[:1000])
        body = response.json()
        assert body["schemas"] == [LIST], body
        found = sorted(r["userName"] for r in body.get("Resources", []))
        expected = sorted(u["userName"] for u in SEEDED if model_matches(tree, u))
        assert (body["totalResults"], found) == (len(expected), expected), (shown, tree)

    def probe(self) -> None:
        """A known-good search finds just its user, and the source still holds the seed."""
        client = self.clients[MODELLED]
        one = client.get("/Users", params={"filter": 'userName eq "alice"'})
        assert one.status_code == 200, one.text
        assert [r["userName"] for r in one.json()["Resources"]] == ["alice"]


@pytest.mark.timeout(TIMEOUT)
def test_generated_scim_requests(gateway: FullGateway, seeded: dict[str, str]) -> None:
    runner = Runner(gateway, seeded)
    runner.probe()

    @fuzz_settings(CASES // BATCH)
    @given(st.lists(requests, min_size=BATCH, max_size=BATCH))
    def fuzz(batch: list[Request]) -> None:
        for request in batch:
            runner.send(request)
        assert gateway.running, gateway.log_tail()
        runner.probe()

    if (chosen := fuzz_seed()) is not None:
        fuzz = seed(chosen)(fuzz)
    began = time.monotonic()
    try:
        fuzz()
    finally:
        took = time.monotonic() - began
        statuses = dict(sorted(runner.tally.statuses.items()))
        print(
            f"\n{runner.tally.requests} SCIM requests in {took:.1f} s "
            f"({runner.tally.requests / max(took, 1e-9):.0f}/s), {runner.tally.modelled} "
            f"modelled filters, {runner.tally.unreadable} unreadable headers, "
            f"{runner.tally.known} writes read back; statuses {statuses}"
        )
        runner.close()
    assert runner.tally.requests >= CASES * 0.9
    if CASES >= 1000:  # each is drawn in about one request of ten: never none in a thousand
        assert runner.tally.unreadable and runner.tally.known, runner.tally
    assert gateway.running, gateway.log_tail()
    with scim_client(gateway, MODELLED, MODELLED_TOKEN) as client:
        listed = client.get("/Users", params={"count": "1000"}).json()
    assert sorted(r["userName"] for r in listed["Resources"]) == sorted(
        u["userName"] for u in SEEDED
    )


@pytest.mark.parametrize("path", ["/%3C%00", "/Users/%00", "/Users/a%0d%0aSet-Cookie:%20x", "/%7F"])
def test_control_characters_in_the_path_get_an_answer(
    gateway: FullGateway, seeded: dict[str, str], path: str
) -> None:
    """The fuzzer's first find: scim2-server echoes the decoded request URL in `Location`,
    and a control character there made the HTTP server drop the connection unanswered.
    And a decoded line break matched no route: Starlette's plain-text 404. Now both are a
    404 SCIM Error, any Location percent-encoded (no header injected)."""
    with scim_client(gateway, MODELLED, MODELLED_TOKEN) as client:
        response = client.get(path)
    assert response.status_code == 404, response.text
    assert response.json()["schemas"] == [ERROR]
    assert "set-cookie" not in response.headers
    location = response.headers.get("location", "")
    assert location.isascii() and location.isprintable() and " " not in location, location


@pytest.mark.parametrize(
    ("target", "status"),
    [
        (b'/Users?filter=userName+eq+"caf\xe9"', None),
        (b"/Users?sortBy=\xff\xfe", None),
        (b"/Users?filter=userName%20eq%20%22caf%E9%22", 400),
        (b"/Users/caf\xe9", None),
        (b"/Users/%E9", 404),
    ],
    ids=["query-filter", "query-sort-by", "query-percent", "path-raw", "path-percent"],
)
def test_octets_that_are_not_utf8_in_the_request_target(
    gateway: FullGateway, seeded: dict[str, str], target: bytes, status: int | None
) -> None:
    """Octets a client sends raw in the request line, where RFC 3986 §2.1 would have them
    percent-encoded. uvicorn's h11 refuses such a line itself (its plain-text 400: status
    None here), so the application never sees one; tests/scim/test_bad_input.py hands them to
    it in-process. Percent-encoded, they are the application's: a SCIM error."""
    host, port = gateway.http_url.removeprefix("http://").split(":")
    line = b"GET /scim/v2/sources/" + MODELLED.encode() + target + b" HTTP/1.0\r\n"
    headers = f"Host: {host}\r\nAuthorization: Bearer {MODELLED_TOKEN}\r\nConnection: close\r\n"
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(line + headers.encode() + b"\r\n")
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    got = int(head.split(b" ", 2)[1])
    assert got < 500, answer[:1000]
    if status is not None:
        assert got == status, answer[:1000]
        assert json.loads(body)["schemas"] == [ERROR]
