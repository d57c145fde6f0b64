"""What the hostile-input scenarios share: case counts, hypothesis settings, LDAP request
builders and strategies (RFC 4511 Appendix B), byte-level mutations, a pipelining runner
for the LDAP front, and a SCIM filter grammar (RFC 7644 §3.4.2.2).

- `fuzz_cases(default)`: how many cases a fuzzer runs, from `IDGATE_FUZZ_CASES` (CI runs the
  small default; `IDGATE_FUZZ_CASES=100000` is the long run). `IDGATE_FUZZ_SEED` fixes
  hypothesis' seed to replay a run.
- `fuzz_settings(examples)`: hypothesis settings that write nothing into the checkout and
  have no deadline (slow shared machines), printing the reproduction blob on failure.
- LDAP: `ldap_cases()` draws one batch of `Case`s: well-formed requests (answered on a bound
  connection; control characters, NUL included, in every string of a search, and filters
  nested up to the message size limit), binds (answered on a connection of their own) and
  cases that may end their connection (mutated frames, unbind, messageID 0, deep nesting
  where no Filter is).
  `LdapFuzzRunner` sends each kind where it belongs and checks the answers.
- SCIM: `scim_filters()` draws filter text from the grammar, with values that carry quotes,
  backslashes, unicode and NUL.

Nothing here imports pytest.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import selectors
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from tests.ldapproxy import ber

__all__ = [
    "CANARY",
    "Batch",
    "Case",
    "LdapFuzzRunner",
    "fuzz_cases",
    "fuzz_settings",
    "ldap_batches",
    "scim_filters",
]

#: Every generated password carries this: the log must never show it.
CANARY = "fuzzcanary7Q3"

PEOPLE = "ou=people,dc=example,dc=org"
MAX_MESSAGE_ID = 2**31 - 1  # RFC 4511 §4.1.1: MessageID ::= INTEGER (0 .. maxInt)


def fuzz_cases(default: int) -> int:
    """The case count of one fuzzer: `IDGATE_FUZZ_CASES`, else `default`."""
    return int(os.environ.get("IDGATE_FUZZ_CASES", default))


def fuzz_settings(examples: int) -> settings:
    """No shrinking unless `IDGATE_FUZZ_SHRINK=1`: each step of it runs against the live
    server (seconds), and the failure message already names the frame that failed."""
    phases = [Phase.explicit, Phase.reuse, Phase.generate]
    if os.environ.get("IDGATE_FUZZ_SHRINK") == "1":
        phases.append(Phase.shrink)
    return settings(
        phases=phases,
        database=None,
        deadline=None,
        max_examples=max(1, examples),
        derandomize=False,
        print_blob=True,
        suppress_health_check=list(HealthCheck),
    )


def fuzz_seed() -> int | None:
    """`IDGATE_FUZZ_SEED`, to replay a run with `hypothesis.seed` (None: a random seed)."""
    value = os.environ.get("IDGATE_FUZZ_SEED")
    return int(value) if value else None


# -- RFC 4511 requests beyond tests/ldapproxy/ber.py ---------------------------------------------

COMPARE_REQUEST = 0x6E
MODIFY_REQUEST = 0x66
ADD_REQUEST = 0x68
DEL_REQUEST = 0x4A
MODIFY_DN_REQUEST = 0x6C
SEARCH_RESULT_REFERENCE = 0x73

#: The final response tag of each request tag (None: no response, RFC 4511 §4.11).
RESPONSE_OF = {
    ber.SEARCH_REQUEST: ber.SEARCH_RESULT_DONE,
    COMPARE_REQUEST: 0x6F,
    MODIFY_REQUEST: 0x67,
    ADD_REQUEST: 0x69,
    DEL_REQUEST: 0x6B,
    MODIFY_DN_REQUEST: 0x6D,
    ber.EXTENDED_REQUEST: ber.EXTENDED_RESPONSE,
    ber.BIND_REQUEST: ber.BIND_RESPONSE,
    ber.ABANDON_REQUEST: None,
}

START_TLS = "1.3.6.1.4.1.1466.20037"
WHO_AM_I = "1.3.6.1.4.1.4203.1.11.3"
PASSWORD_MODIFY = "1.3.6.1.4.1.4203.1.11.1"
PAGED_RESULTS = "1.2.840.113556.1.4.319"
MANAGE_DSA_IT = "2.16.840.1.113730.3.4.2"


def tlv_set(tag: int, items: Sequence[bytes]) -> bytes:
    return ber.tlv(tag, b"".join(items))


def ava(tag: int, attribute: bytes, value: bytes) -> bytes:
    return ber.tlv(tag, ber.octets(attribute) + ber.octets(value))


def extended(oid: str, value: bytes | None) -> bytes:
    body = ber.octets(oid, 0x80) + (ber.octets(value, 0x81) if value is not None else b"")
    return ber.tlv(ber.EXTENDED_REQUEST, body)


def password_modify_value(identity: bytes | None, old: bytes | None, new: bytes | None) -> bytes:
    parts = [(0x80, identity), (0x81, old), (0x82, new)]
    return ber.tlv(ber.SEQUENCE, b"".join(ber.octets(v, t) for t, v in parts if v is not None))


def search(
    base: bytes,
    scope: int,
    deref: int,
    size: int,
    time_limit: int,
    types_only: bool,
    ldap_filter: bytes,
    attributes: Sequence[bytes],
) -> bytes:
    return ber.tlv(
        ber.SEARCH_REQUEST,
        ber.octets(base)
        + ber.enumerated(scope)
        + ber.enumerated(deref)
        + ber.integer(size)
        + ber.integer(time_limit)
        + ber.boolean(types_only)
        + ldap_filter
        + tlv_set(ber.SEQUENCE, [ber.octets(a) for a in attributes]),
    )


# -- strategies -------------------------------------------------------------------------------

#: C0 controls and DEL (RFC 4515 §3 escapes them as \\XX; NUL is the one no store can hold).
CONTROLS = [chr(code) for code in range(0x20)] + ["\x7f"]

_TRICKY = [
    "*", "(", ")", "\\", "\x00", "\\2a", "\\00", "=", "+", ",", ";", '"', "#", "<", ">",
    "uid=", "*)(uid=*", "admin)(|(uid=*", "\uff41\uff4c\uff49\uff43\uff45", "ÀLICE", "İ",
    "ß", "\u200b", "\ufeff", "alice\x00", "\x00alice", "al\x00ice", "alice\x01", "\t",
]  # fmt: skip


def texts(max_size: int = 24) -> st.SearchStrategy[str]:
    """Text for every string of a request (bases, attribute names, values of every filter
    item, bind names): anything, metacharacters, and control characters among real names."""
    return st.one_of(
        st.text(max_size=max_size),
        st.sampled_from(_TRICKY),
        st.lists(st.sampled_from([*_TRICKY, *CONTROLS, "alice", "bob", "a", "1"]), max_size=5).map(
            "".join
        ),
    )


def octet_strings(max_size: int = 24) -> st.SearchStrategy[bytes]:
    return st.one_of(
        texts(max_size).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.binary(max_size=max_size),  # not always UTF-8
    )


ATTRIBUTES = [
    "uid", "cn", "sn", "mail", "objectClass", "memberOf", "mobile", "telephoneNumber",
    "givenName", "displayName", "entryDN", "entryUUID", "title", "userPassword", "UID",
    "1.1", "*", "+", "2.5.4.3", "nonexistent", "uid;binary", "",
]  # fmt: skip

attribute_names = st.one_of(st.sampled_from(ATTRIBUTES), texts(12)).map(
    lambda t: t.encode("utf-8", "surrogatepass")
)

BASES = [
    PEOPLE, "dc=example,dc=org", "ou=contractors,dc=example,dc=org", "dc=idgate",
    "ou=scim,dc=idgate", "", "uid=alice,ou=people,dc=example,dc=org", "cn=nowhere",
    "not a dn", "uid=alice,ou=people,dc=example,dc=org,cn=admins", "OU=People,DC=Example,DC=Org",
]  # fmt: skip

dns = st.one_of(
    st.sampled_from(BASES).map(str.encode),
    st.builds(lambda rdn, base: f"{rdn},{base}".encode(), texts(16), st.sampled_from(BASES)),
    octet_strings(40),
)


def _leaf_filters() -> st.SearchStrategy[bytes]:
    value = octet_strings(16)
    substring_parts = st.lists(
        st.tuples(st.sampled_from([0x80, 0x81, 0x82]), value), min_size=1, max_size=4
    ).map(lambda parts: tlv_set(ber.SEQUENCE, [ber.octets(v, t) for t, v in parts]))
    extensible = st.builds(
        lambda rule, kind, match, dn_attributes: ber.tlv(
            0xA9,
            (ber.octets(rule, 0x81) if rule is not None else b"")
            + (ber.octets(kind, 0x82) if kind is not None else b"")
            + ber.octets(match, 0x83)
            + (ber.tlv(0x84, b"\xff") if dn_attributes else b""),
        ),
        st.none() | st.sampled_from([b"2.5.13.2", b"caseIgnoreMatch", b"1.2.3"]),
        st.none() | attribute_names,
        value,
        st.booleans(),
    )
    return st.one_of(
        st.builds(ava, st.sampled_from([0xA3, 0xA5, 0xA6, 0xA8]), attribute_names, value),
        st.builds(lambda a: ber.octets(a, 0x87), attribute_names),
        st.builds(lambda a, s: ber.tlv(0xA4, ber.octets(a) + s), attribute_names, substring_parts),
        extensible,
    )


#: RFC 4511 §4.5.1.7: every filter choice, nested up to a depth the front still decodes.
filters: st.SearchStrategy[bytes] = st.recursive(
    _leaf_filters(),
    lambda children: st.one_of(
        st.builds(
            lambda tag, items: tlv_set(tag, items),
            st.sampled_from([0xA0, 0xA1]),
            st.lists(children, max_size=4),
        ),
        children.map(lambda child: ber.tlv(0xA2, child)),
    ),
    max_leaves=12,
)


def nested(depth: int, leaf: bytes, tags: Sequence[int]) -> bytes:
    """`leaf` inside `depth` elements, the tags in turn from the outside; headers computed
    from the inside out and joined once, so 40,000 levels cost no quadratic copying."""
    headers: list[bytes] = []
    size = len(leaf)
    for level in reversed(range(depth)):
        header = bytes([tags[level % len(tags)]]) + ber.length(size)
        headers.append(header)
        size += len(header)
    return b"".join(reversed(headers)) + leaf


#: Nesting around the front's limit (ldapproxy.filters.MAX_DEPTH = 20), around the depth
#: ldaptor is given (ldapproxy.wire.MAX_NESTING = 64), and up to what a message of the
#: fuzzed front's 256 KiB may carry: every one well-formed, answered on its connection.
deep_filters = st.builds(
    nested,
    st.one_of(st.integers(10, 80), st.integers(80, 1000), st.integers(1000, 40_000)),
    _leaf_filters(),
    st.lists(st.sampled_from([0xA0, 0xA1, 0xA2]), min_size=1, max_size=3),
)

#: Filters of very many terms in one AND/OR.
wide_filters = st.builds(
    lambda tag, leaf, count: tlv_set(tag, [leaf] * count),
    st.sampled_from([0xA0, 0xA1]),
    _leaf_filters(),
    st.integers(100, 3000),
)

message_ids = st.one_of(
    st.integers(1, 127),
    st.integers(128, 70_000),
    st.integers(70_000, MAX_MESSAGE_ID),
    st.just(MAX_MESSAGE_ID),
)

_control_value = st.none() | st.binary(max_size=16)
paged_value = st.one_of(
    st.builds(
        lambda size, cookie: ber.tlv(ber.SEQUENCE, ber.integer(size) + ber.octets(cookie)),
        st.integers(-5, 2000),
        st.binary(max_size=16),
    ),
    st.binary(max_size=12),
)
controls = st.lists(
    st.one_of(
        st.builds(ber.control, st.sampled_from([MANAGE_DSA_IT]), st.booleans(), _control_value),
        st.builds(ber.control, st.just(PAGED_RESULTS), st.booleans(), st.none() | paged_value),
        st.builds(
            ber.control,
            st.sampled_from(["1.3.6.1.4.1.99999.1", "1.2.840.113556.1.4.473", "0.0"]),
            st.booleans(),
            _control_value,
        ),
    ),
    max_size=3,
)

searches = st.builds(
    search,
    dns,
    st.sampled_from([0, 1, 2, 2, 2, 3, 200]),
    st.sampled_from([0, 1, 2, 3, 9]),
    st.sampled_from([0, 0, 1, 2, 5, -1, 2**31 - 1]),
    st.sampled_from([0, 0, 1, 30, -1]),
    st.booleans(),
    st.one_of(filters, filters, filters, deep_filters, deep_filters, wide_filters),
    st.lists(attribute_names, max_size=4),
)

extended_requests = st.one_of(
    st.builds(extended, st.just(WHO_AM_I), st.none() | st.binary(max_size=8)),
    st.builds(extended, st.just(START_TLS), st.none()),
    st.builds(
        extended,
        st.just(PASSWORD_MODIFY),
        st.none()
        | st.builds(
            password_modify_value,
            st.none() | dns,
            st.none() | octet_strings(),
            st.none() | octet_strings(),
        )
        | st.binary(max_size=12),
    ),
    st.builds(extended, st.sampled_from(["1.2.3.4", "", "1.3.6.1.4.1.1466.20036"]), st.none()),
)

_values = st.lists(octet_strings(12), max_size=3)
writes = st.one_of(
    st.builds(
        lambda entry, attr, value: ber.tlv(
            COMPARE_REQUEST, ber.octets(entry) + ava(0x30, attr, value)
        ),
        dns, attribute_names, octet_strings(),
    ),
    st.builds(
        lambda entry, changes: ber.tlv(
            MODIFY_REQUEST,
            ber.octets(entry)
            + tlv_set(ber.SEQUENCE, [
                ber.tlv(ber.SEQUENCE, ber.enumerated(op) + ber.tlv(
                    ber.SEQUENCE, ber.octets(a) + tlv_set(0x31, [ber.octets(v) for v in vs])))
                for op, a, vs in changes
            ]),
        ),
        dns,
        st.lists(st.tuples(st.sampled_from([0, 1, 2, 3]), attribute_names, _values), max_size=3),
    ),
    st.builds(
        lambda entry, attrs: ber.tlv(
            ADD_REQUEST,
            ber.octets(entry) + tlv_set(ber.SEQUENCE, [
                ber.tlv(ber.SEQUENCE, ber.octets(a) + tlv_set(0x31, [ber.octets(v) for v in vs]))
                for a, vs in attrs
            ]),
        ),
        dns, st.lists(st.tuples(attribute_names, _values), max_size=3),
    ),
    st.builds(lambda entry: ber.octets(entry, DEL_REQUEST), dns),
    st.builds(
        lambda entry, rdn, delete, superior: ber.tlv(
            MODIFY_DN_REQUEST,
            ber.octets(entry) + ber.octets(rdn) + ber.boolean(delete)
            + (ber.octets(superior, 0x80) if superior is not None else b""),
        ),
        dns, octet_strings(), st.booleans(), st.none() | dns,
    ),
)  # fmt: skip

BIND_NAMES = [
    "uid=alice,ou=people,dc=example,dc=org", "alice", "ALICE", "bob", "uid=bob,ou=people",
    "cn=radius,ou=services,dc=idgate", "uid=nobody,ou=people,dc=example,dc=org", "",
    "uid=alice,ou=people,dc=example,dc=org,cn=admins", "*", "alice@example.org",
    "EXAMPLE\\alice", "uid=x,ou=scim,dc=idgate", "uid=alice+cn=x,ou=people,dc=example,dc=org",
    # Control characters in a name no source can hold (issue 22): 49, on either store.
    "alice\x00", "uid=alice\x00,ou=people,dc=example,dc=org", "alice\n", "\x7falice",
    "uid=alice\\00,ou=people,dc=example,dc=org", "cn=radius\x00,ou=services,dc=idgate",
]  # fmt: skip

passwords = st.one_of(
    st.builds(lambda t: CANARY + t, texts(12)),
    st.builds(lambda t: t + CANARY, texts(12)),
).map(lambda t: t.encode("utf-8", "surrogatepass"))

binds = st.one_of(
    st.builds(
        ber.bind_request,
        st.one_of(st.sampled_from(BIND_NAMES).map(str.encode), dns, octet_strings()),
        passwords,
    ),
    st.builds(ber.bind_request, octet_strings(), st.just(b"")),  # unauthenticated
    st.builds(ber.bind_request, st.just(b""), st.just(b"")),  # anonymous
    st.builds(
        ber.bind_request, st.sampled_from(BIND_NAMES).map(str.encode), passwords,
        st.sampled_from([0, 1, 2, 4, 127]),
    ),
    st.builds(
        ber.sasl_bind_request,
        st.sampled_from(BIND_NAMES),
        st.sampled_from(["PLAIN", "EXTERNAL", "GSSAPI", "DIGEST-MD5", ""]),
        st.none() | passwords,
    ),
)  # fmt: skip

abandons = st.integers(0, MAX_MESSAGE_ID).map(
    lambda n: ber.tlv(ber.ABANDON_REQUEST, ber.integer(n)[2:])
)


@dataclass(frozen=True)
class Case:
    """One generated input.

    kind: "request" (a well-formed non-bind request, answered on the bound connection),
        "bind" (answered on the bind connection), or "ending" (raw bytes on a connection of
        their own, which the server may end: it must then end it cleanly).
    """

    kind: str
    op: bytes = b""
    message_id: int = 1
    controls: tuple[bytes, ...] = ()
    raw: bytes = b""

    def __repr__(self) -> str:
        data = (self.raw or self.frame()).hex()
        shown = data if len(data) <= 400 else f"{data[:400]}...({len(data) // 2} bytes)"
        return f"Case({self.kind}, {shown})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))  # hypothesis prints dataclasses field by field otherwise

    @property
    def request_tag(self) -> int:
        return self.op[0]

    def frame(self, message_id: int | None = None) -> bytes:
        return ber.message(
            self.message_id if message_id is None else message_id,
            self.op,
            list(self.controls) or None,
        )


requests = st.builds(
    lambda op, message_id, ctrls: Case("request", op, message_id, tuple(ctrls)),
    st.one_of(searches, searches, extended_requests, writes, abandons),
    message_ids,
    controls,
)

bind_cases = st.builds(
    lambda op, message_id, ctrls: Case("bind", op, message_id, tuple(ctrls)),
    binds,
    message_ids,
    controls.filter(lambda cs: len(cs) < 2),
)


_LENGTH_HEADERS = [
    b"\x80", b"\x85\x00\x00\x00\x00\x01", b"\x81\x05", b"\x84\x00\x00\x00\x02",
    b"\x84\x7f\xff\xff\xff", b"\x82\x00\x00", b"\x00", b"\x7f", b"\x81\x7f",
]  # fmt: skip


def mutate(rng: random.Random, frame: bytes) -> bytes:
    """One byte-level mutation of a valid frame: truncate, flip a bit, splice or insert
    bytes, overwrite a byte (tags and lengths inside), or a wrong outer length header
    (shorter, longer, long form, indefinite, over 4 octets)."""
    how = rng.randrange(6 if len(frame) > 2 else 5)
    at = rng.randrange(len(frame))
    if how == 0:
        return frame[: max(1, at)]
    if how == 1:
        return frame[:at] + bytes([frame[at] ^ (1 << rng.randrange(8))]) + frame[at + 1 :]
    if how == 2:
        end = rng.randrange(at, len(frame) + 1)
        return frame[:at] + rng.randbytes(rng.randrange(9)) + frame[end:]
    if how == 3:
        return frame[:at] + rng.randbytes(rng.randrange(1, 9)) + frame[at:]
    if how == 4:
        return frame[:at] + bytes([rng.randrange(256)]) + frame[at + 1 :]
    inner = frame[2 if frame[1] < 0x80 else 2 + (frame[1] & 0x7F) :]
    return bytes([ber.SEQUENCE]) + rng.choice(_LENGTH_HEADERS) + inner


def ending_case(draw: Any) -> Case:
    """Input that may end its connection: an unbind, messageID 0 or over maxInt, deep
    nesting where only a Filter may nest (RFC 4511 Appendix B), or noise (mutated frames come
    from `Batch.variants`)."""
    what = draw(st.sampled_from(["unbind", "id", "deep", "noise"]))
    if what == "unbind":
        raw = ber.message(draw(message_ids), ber.tlv(ber.UNBIND_REQUEST, b""))
        return Case("ending", raw=raw)
    if what == "id":
        message_id = draw(st.sampled_from([0, -1, MAX_MESSAGE_ID + 1, 2**40]))
        op = draw(st.one_of(searches, binds, extended_requests))
        return Case("ending", raw=ber.message(message_id, op))
    if what == "deep":
        deep = nested(draw(st.integers(100, 5000)), ber.octets("x"), [ber.SEQUENCE])
        op = draw(
            st.sampled_from([
                ber.tlv(ber.BIND_REQUEST, ber.integer(3) + deep + ber.octets("pw", 0x80)),
                ber.tlv(
                    ber.SEARCH_REQUEST,
                    ber.octets(PEOPLE) + ber.enumerated(2) + ber.enumerated(0)
                    + ber.integer(0) + ber.integer(0) + ber.boolean(False)
                    + ber.present("uid") + ber.tlv(ber.SEQUENCE, deep),  # attribute list
                ),
                ber.tlv(ber.EXTENDED_REQUEST, deep),
            ])
        )  # fmt: skip
        return Case("ending", raw=ber.message(1, op))
    if what == "noise":
        return Case("ending", raw=draw(st.binary(min_size=1, max_size=64)))


@dataclass(frozen=True)
class Batch:
    """Cases drawn by hypothesis, and `variants` byte-level mutations of each one's frame
    made by a PRNG whose seed hypothesis drew (so an example replays whole)."""

    cases: list[Case]
    mutation_seed: int
    variants: int

    def mutants(self) -> list[bytes]:
        rng = random.Random(self.mutation_seed)
        frames = [c.frame() if c.kind != "ending" else c.raw for c in self.cases]
        return [mutate(rng, frame) for frame in frames for _ in range(self.variants)]

    def __len__(self) -> int:
        return len(self.cases) * (1 + self.variants)

    def __repr__(self) -> str:
        seed = self.mutation_seed
        return f"Batch({self.cases!r}, mutation_seed={seed}, variants={self.variants})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


@st.composite
def ldap_batches(draw: Any, size: int, variants: int) -> Batch:
    """`size` cases (half well-formed requests, a fifth binds, the rest ending ones), each
    with `variants` mutated copies."""
    batch: list[Case] = []
    for _ in range(size):
        kind = draw(st.integers(0, 9))
        if kind < 5:
            batch.append(draw(requests))
        elif kind < 7:
            batch.append(draw(bind_cases))
        else:
            batch.append(ending_case(draw))
    return Batch(batch, draw(st.integers(0, 2**32)), variants)


# -- running LDAP cases -------------------------------------------------------------------------

#: Result codes a request may get (RFC 4511 Appendix A); 80 (other) is "internal error".
FORBIDDEN_CODES = {80}
BIND_CODES = {2, 7, 12, 49, 53}


@dataclass
class Tally:
    cases: int = 0
    requests: int = 0
    binds: int = 0
    ending: int = 0
    notices: int = 0
    codes: dict[int, int] = field(default_factory=dict)

    def code(self, code: int) -> None:
        self.codes[code] = self.codes.get(code, 0) + 1


class LdapFuzzRunner:
    """Sends generated cases to one front and checks every answer.

    - requests: pipelined on one connection bound as the service account, each under a
      messageID unique in its batch; every one but Abandon gets exactly one final response of
      its type (search entries before it), never resultCode 80; an Abandon names no id of the
      batch, so it may never silence another answer.
    - binds: pipelined on a second connection (a bind resets who it is); every one gets a
      BindResponse with a refusal code, except the anonymous bind (RFC 4513 §5.1.1).
    - ending cases: each on a new connection, the client then half-closes; whatever comes
      back parses as LDAPMessages, a Notice of Disconnection only last, and the server closes
      within `close_timeout`.
    """

    def __init__(
        self, port: int, service_dn: str, service_password: str, close_timeout: float = 5.0
    ) -> None:
        self.port = port
        self.service_dn = service_dn
        self.service_password = service_password
        self.close_timeout = close_timeout
        self.tally = Tally()
        self._service: ber.Client | None = None
        self._binder: ber.Client | None = None

    def close(self) -> None:
        for client in (self._service, self._binder):
            if client is not None:
                with contextlib.suppress(OSError):
                    client.close()
        self._service = self._binder = None

    def _service_client(self) -> ber.Client:
        if self._service is None:
            client = ber.Client(self.port)
            client.send(ber.message(1, ber.bind_request(self.service_dn, self.service_password)))
            answer = client.read()
            assert answer is not None and answer.code == 0, answer
            self._service = client
        return self._service

    def _bind_client(self) -> ber.Client:
        if self._binder is None:
            self._binder = ber.Client(self.port)
        return self._binder

    def run(self, batch: Batch) -> None:
        self.tally.cases += len(batch)
        cases = batch.cases
        self._pipeline(self._service_client(), [c for c in cases if c.kind == "request"])
        self._pipeline(self._bind_client(), [c for c in cases if c.kind == "bind"])
        self._endings([c.raw for c in cases if c.kind == "ending"] + batch.mutants())

    def _pipeline(self, client: ber.Client, cases: Sequence[Case]) -> None:
        if not cases:
            return
        ids: dict[int, Case] = {}
        frames: list[bytes] = []
        taken: set[int] = set()
        for case in cases:
            message_id = case.message_id
            while message_id in taken:
                message_id = message_id % MAX_MESSAGE_ID + 1
            taken.add(message_id)
            ids[message_id] = case
        for message_id, case in ids.items():
            op = case.op
            if case.request_tag == ber.ABANDON_REQUEST:
                target = int.from_bytes(op[2:], "big", signed=True)
                if target in taken:  # never abandon a request of this batch
                    op = ber.tlv(ber.ABANDON_REQUEST, ber.integer(0)[2:])
                op_case = Case(case.kind, op, message_id, case.controls)
                frames.append(op_case.frame())
            else:
                frames.append(case.frame(message_id))
        client.send(b"".join(frames))
        waiting = {i for i, c in ids.items() if RESPONSE_OF.get(c.request_tag) is not None}
        while waiting:
            try:
                answer = client.read(timeout=30)
            except TimeoutError:
                raise AssertionError(
                    f"no answer to {sorted(waiting)[:5]} of {len(ids)} pipelined requests: "
                    f"{[ids[i].frame(i).hex() for i in sorted(waiting)[:3]]}"
                ) from None
            assert answer is not None, (
                f"connection closed with {len(waiting)} answers owed; first owed: "
                f"{ids[min(waiting)].frame(min(waiting)).hex()}"
            )
            assert not answer.is_notice_of_disconnection, (
                f"well-formed requests ended the connection ({answer.diagnostic}); "
                f"frames: {[ids[i].frame(i).hex() for i in sorted(waiting)][:5]}"
            )
            case = ids.get(answer.id)
            assert case is not None and answer.id in waiting, f"unexpected answer {answer}"
            if answer.op in (ber.SEARCH_RESULT_ENTRY, SEARCH_RESULT_REFERENCE):
                assert case.request_tag == ber.SEARCH_REQUEST, (answer, case)
                continue
            assert answer.op == RESPONSE_OF[case.request_tag], (answer, case.frame(answer.id).hex())
            code = answer.code
            self.tally.code(code)
            assert code not in FORBIDDEN_CODES, (answer.diagnostic, case.frame(answer.id).hex())
            if case.kind == "bind":
                self.tally.binds += 1
                # Only the anonymous bind (empty name and password) may succeed (RFC 4513
                # §5.1.1); every other generated bind carries a wrong password or none.
                anonymous = case.op == ber.bind_request(b"", b"")
                allowed = BIND_CODES | {0} if anonymous else BIND_CODES
                assert code in allowed, (code, answer.diagnostic, case.frame().hex())
            else:
                self.tally.requests += 1
            waiting.discard(answer.id)

    def _endings(self, raws: Sequence[bytes], in_flight: int = 96) -> None:
        """Each input on a connection of its own, `in_flight` at a time; the client
        half-closes after sending, and the server must close within `close_timeout`."""
        self.tally.ending += len(raws)
        pending = list(reversed(raws))
        selector = selectors.DefaultSelector()
        open_: dict[socket.socket, tuple[bytes, bytearray, float]] = {}
        try:
            while pending or open_:
                while pending and len(open_) < in_flight:
                    raw = pending.pop()
                    sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                    try:
                        sock.sendall(raw)
                        sock.shutdown(socket.SHUT_WR)
                    except OSError as exc:
                        # Closed by the server while the input was still arriving, or before
                        # the half-close (ENOTCONN): a clean end. Anything else is not.
                        if exc.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                            sock.close()
                            raise
                    sock.setblocking(False)
                    selector.register(sock, selectors.EVENT_READ)
                    open_[sock] = (raw, bytearray(), time.monotonic() + self.close_timeout)
                for key, _ in selector.select(timeout=0.5):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    raw, received, _deadline = open_[sock]
                    try:
                        chunk = sock.recv(65536)
                    except BlockingIOError:
                        continue
                    except ConnectionResetError:
                        chunk = b""
                    if chunk:
                        received += chunk
                        continue
                    selector.unregister(sock)
                    sock.close()
                    del open_[sock]
                    self._check_ending(raw, bytes(received))
                now = time.monotonic()
                for raw, _, deadline in open_.values():
                    assert now < deadline, (
                        f"still open {self.close_timeout:g} s after the client's EOF: {raw.hex()}"
                    )
        finally:
            for sock in open_:
                sock.close()
            selector.close()

    def _check_ending(self, raw: bytes, received: bytes) -> None:
        answers: list[ber.Answer] = []
        position = 0
        while position < len(received):
            parsed = ber._parse(received, position)
            assert parsed is not None, f"cut-off answer {received.hex()} to {raw.hex()}"
            try:
                answers.append(ber.decode(received[position : parsed[2]]))
            except (AssertionError, IndexError) as exc:
                raise AssertionError(f"undecodable answer to {raw.hex()}: {exc}") from None
            position = parsed[2]
        for number, answer in enumerate(answers):
            if answer.is_notice_of_disconnection:
                self.tally.notices += 1
                assert number == len(answers) - 1, f"answers after a notice: {answers}"
                assert answer.code == 2, answer
            else:
                assert answer.op in (*RESPONSE_OF.values(), ber.SEARCH_RESULT_ENTRY), answer
                if answer.op != ber.SEARCH_RESULT_ENTRY:
                    assert answer.code not in FORBIDDEN_CODES, (answer.diagnostic, raw.hex())

    def probe(self, dn: str, password: str) -> None:
        """The listener is alive and right: a good bind succeeds, a wrong one gets 49."""
        with ber.Client(self.port) as client:
            client.send(
                ber.message(1, ber.bind_request(dn, "wrong-" + password))
                + ber.message(2, ber.bind_request(dn, password))
            )
            wrong, good = client.read(timeout=30), client.read(timeout=30)
        assert wrong is not None and (wrong.id, wrong.code) == (1, 49), wrong
        assert good is not None and (good.id, good.code) == (2, 0), good


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    """`with timed() as took:` -> took[0] is the seconds the block ran."""
    took: list[float] = []
    began = time.monotonic()
    try:
        yield took
    finally:
        took.append(time.monotonic() - began)


# -- SCIM filters (RFC 7644 §3.4.2.2) -----------------------------------------------------------

SCIM_ATTRIBUTES = [
    "userName", "USERNAME", "id", "externalId", "displayName", "name.givenName",
    "name.familyName", "active", "meta.created", "meta.lastModified", "emails", "emails.value",
    "emails.type", "title", "nickName", "urn:ietf:params:scim:schemas:core:2.0:User:userName",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
    "password", "groups", "x", "meta", "name", "schemas", "emails.primary", "phoneNumbers.value",
]  # fmt: skip
SCIM_OPERATORS = ["eq", "ne", "co", "sw", "ew", "gt", "lt", "ge", "le", "EQ", "Co", "xx"]
_SCIM_TRICKY = ['\\"', "\\\\", "\\u0000", "\x00", "'", "%", "_", "*", '"', ")", "(", "[", "]",
                " or ", " and ", "\uff41", "é", "\u202e", "\\u00e9", "\\n", "@"]  # fmt: skip


def _quoted(text: str) -> str:
    return '"' + text + '"'


scim_values = st.one_of(
    st.lists(st.one_of(st.sampled_from(_SCIM_TRICKY), st.text(max_size=6)), max_size=4)
    .map("".join)
    .map(_quoted),
    st.sampled_from(["true", "false", "null", "1", "-2.5", "1e309", '"2024-01-01T00:00:00Z"']),
    st.text(max_size=8),  # unquoted garbage
    st.sampled_from(['"alice"', '"bob"', '"al"', '"ice"', '"example.org"']),
)

_scim_leaf = st.one_of(
    st.builds(
        lambda a, o, v: f"{a} {o} {v}",
        st.sampled_from(SCIM_ATTRIBUTES),
        st.sampled_from(SCIM_OPERATORS),
        scim_values,
    ),
    st.builds(lambda a: f"{a} pr", st.sampled_from(SCIM_ATTRIBUTES)),
)

#: Filter text from the grammar (and/or/not, grouping, value paths), sometimes broken.
scim_filters: st.SearchStrategy[str] = st.recursive(
    _scim_leaf,
    lambda inner: st.one_of(
        st.builds(lambda a, b: f"{a} and {b}", inner, inner),
        st.builds(lambda a, b: f"{a} or {b}", inner, inner),
        inner.map(lambda f: f"not ({f})"),
        inner.map(lambda f: f"({f})"),
        st.builds(
            lambda a, f: f"{a}[{f}]", st.sampled_from(["emails", "phoneNumbers", "x"]), inner
        ),
        st.builds(lambda f, cut: f[:cut], inner, st.integers(0, 40)),  # cut short
    ),
    max_leaves=6,
)


# -- SCIM filters with a meaning (RFC 7644 §3.4.2.2), for a model of the seeded users ------------

#: A filter of the modelled subset: ("cmp", attr, op, value), ("active", op, flag),
#: ("pr", attr), ("and"|"or", left, right), ("not", inner).
ModelTree = tuple[Any, ...]

MODEL_STRING_ATTRIBUTES = {
    "userName": "userName", "USERNAME": "userName", "username": "userName",
    "urn:ietf:params:scim:schemas:core:2.0:User:userName": "userName",
    "displayName": "displayName", "DisplayName": "displayName",
}  # fmt: skip
MODEL_OPERATORS = ["eq", "ne", "co", "sw", "ew", "EQ", "Co", "sW"]
_MODEL_PIECES = [
    '"', "\\", "*", "%", "_", "'", "(", ")", "[", "]", " ", "é", "É", "\uff41", "ß", "\u0430",
    " or ", " and ", "userName", "a", "b", "e", "ice", "al", "bo", "Bob", "ALICE", "x",
    "\x00", "\x01", "\t", "\n", "\x1f", "\x7f",
]  # fmt: skip

#: Assertion values: seed-like pieces, metacharacters and controls (JSON-escaped in the
#: filter). No seeded name holds NUL, so a value with one matches nothing, as the model says.
model_values = st.lists(
    st.one_of(
        st.sampled_from(_MODEL_PIECES),
        st.text(st.characters(codec="utf-8"), max_size=3),
    ),
    max_size=4,
).map("".join)


def _json_string(value: str, ascii_only: bool) -> str:
    import json

    return json.dumps(value, ensure_ascii=ascii_only)


_model_leaf: st.SearchStrategy[tuple[str, ModelTree]] = st.one_of(
    st.builds(
        lambda attr, op, value, ascii_only: (
            f"{attr} {op} {_json_string(value, ascii_only)}",
            ("cmp", MODEL_STRING_ATTRIBUTES[attr], op.lower(), value),
        ),
        st.sampled_from(sorted(MODEL_STRING_ATTRIBUTES)),
        st.sampled_from(MODEL_OPERATORS),
        model_values,
        st.booleans(),
    ),
    st.builds(
        lambda op, flag: (f"active {op} {str(flag).lower()}", ("active", op.lower(), flag)),
        st.sampled_from(["eq", "ne", "EQ"]),
        st.booleans(),
    ),
    st.builds(
        lambda attr: (f"{attr} pr", ("pr", MODEL_STRING_ATTRIBUTES[attr])),
        st.sampled_from(sorted(MODEL_STRING_ATTRIBUTES)),
    ),
)

#: (filter text, tree) of eq/ne/co/sw/ew/pr on userName and displayName, active eq/ne,
#: and/or/not and grouping, which `model_matches` evaluates.
scim_model_filters: st.SearchStrategy[tuple[str, ModelTree]] = st.recursive(
    _model_leaf,
    lambda inner: st.one_of(
        st.builds(
            lambda a, b: (f"{_and_side(a)} and {_and_side(b)}", ("and", a[1], b[1])), inner, inner
        ),
        st.builds(lambda a, b: (f"{a[0]} or {b[0]}", ("or", a[1], b[1])), inner, inner),
        inner.map(lambda f: (f"not ({f[0]})", ("not", f[1]))),
        inner.map(lambda f: (f"({f[0]})", f[1])),
    ),
    max_leaves=5,
)


def _and_side(side: tuple[str, ModelTree]) -> str:
    """An `or` inside an `and` is grouped: `and` binds tighter (RFC 7644 §3.4.2.2)."""
    return f"({side[0]})" if side[1][0] == "or" else side[0]


def _key(text: str) -> str:
    return text.strip().casefold()  # gateway.users.names.name_key: how the store keeps both names


def model_matches(tree: ModelTree, user: dict[str, Any]) -> bool:
    """Whether a seeded SCIM user (its `userName`, `displayName`, `active`) passes `tree`.

    caseExact is false for both names (RFC 7643 §4.1.1): eq compares the folded, stripped
    names; co/sw/ew the folded value within the folded name. An absent name is equal to
    nothing, so `ne` matches it.
    """
    kind = tree[0]
    if kind == "and":
        return model_matches(tree[1], user) and model_matches(tree[2], user)
    if kind == "or":
        return model_matches(tree[1], user) or model_matches(tree[2], user)
    if kind == "not":
        return not model_matches(tree[1], user)
    if kind == "active":
        _, op, flag = tree
        return (bool(user.get("active", True)) == flag) == (op == "eq")
    if kind == "pr":
        return bool(user.get(tree[1]))
    _, attr, op, value = tree
    stored = user.get(attr)
    if stored is None:
        return op == "ne"
    if op in ("eq", "ne"):
        return (_key(stored) == _key(value)) == (op == "eq")
    name, folded = _key(stored), value.casefold()
    return {"co": folded in name, "sw": name.startswith(folded), "ew": name.endswith(folded)}[op]
