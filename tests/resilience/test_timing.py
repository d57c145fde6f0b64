"""A bind of an unknown name and a bind with a wrong password look the same from outside: the
same LDAP result code and diagnostic message (the client must not learn which of the two
failed), and the same latency, within 10 % at the median (SPEC §6: "unknown user
and wrong password get the same answer in the same time"; gateway.auth.binds.RefusalPacer).

A real `idgate serve --only ldap` in front of the shared slapd; one raw connection sends the
two binds alternately (A B A B ...), so load on the shared machine falls on both alike, and
the medians of many samples are compared. Cases:

- `cached`: JIT window 300 s; the wrong-password user bound right once before, so the store
  holds them in the window; the unknown name is fresh for each sample (a probe for names
  sends each name once).
- `due`: JIT window 0; every bind of the known user syncs it, every unknown name is read.

GatewayProcess sets `failed_auth_limit` 1000 per name; no name here fails that often (the
known user fails SAMPLES + WARMUP times), so the limiter never answers in place of the
directory. Each sample is one round trip measured with `time.perf_counter`.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.gateway.realgw import slapd_source
from tests.ldapproxy import ber
from tests.ldapproxy.clients import PEOPLE, Person, add_person
from tests.ldapproxy.conftest import running
from tests.ldapproxy.gateway_process import GatewayProcess
from tests.servers.slapd import Slapd

# One worker runs the whole module: its servers are module-scoped (pytest-xdist loadgroup).
pytestmark = pytest.mark.xdist_group("timing")

SAMPLES = 300
WARMUP = 20
#: The medians may differ by this fraction of the larger one.
TOLERANCE = 0.10
INVALID_CREDENTIALS = 49

CASES = {"cached": 300, "due": 0}


@dataclass
class Timings:
    seconds: list[float]
    answers: set[tuple[int, str]]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def bind_once(
    client: ber.Client, message_id: int, name: str, password: str
) -> tuple[float, ber.Answer]:
    frame = ber.message(message_id, ber.bind_request(name, password))
    began = time.perf_counter()
    client.send(frame)
    answer = client.read(timeout=30)
    took = time.perf_counter() - began
    assert answer is not None and answer.id == message_id, answer
    assert answer.op == ber.BIND_RESPONSE, answer
    return took, answer


def interleaved(
    port: int, wrong: tuple[str, str], unknown: Iterator[tuple[str, str]], samples: int
) -> tuple[Timings, Timings]:
    """`samples` (after WARMUP) binds of each kind, alternately on one connection."""
    known = Timings([], set())
    missing = Timings([], set())
    with ber.Client(port) as client:
        message_id = 0
        for number in range(WARMUP + samples):
            for timings, (name, password) in ((known, wrong), (missing, next(unknown))):
                message_id += 1
                took, answer = bind_once(client, message_id, name, password)
                timings.answers.add((answer.code, answer.diagnostic))
                if number >= WARMUP:
                    timings.seconds.append(took)
    return known, missing


@pytest.fixture(scope="module", params=CASES.keys())
def front(request: pytest.FixtureRequest, slapd: Slapd) -> Iterator[GatewayProcess]:
    process = GatewayProcess([slapd_source([slapd.url])], jit_interval_seconds=CASES[request.param])
    yield from running(process)


@pytest.fixture
def person(slapd: Slapd, front: GatewayProcess) -> Person:
    """A user the gateway's store holds: bound right once, through the front."""
    person = add_person(slapd, "timing")
    with ber.Client(front.port) as client:
        _, answer = bind_once(client, 1, person.dn, person.password)
    assert answer.code == 0, answer.diagnostic
    return person


def unknown_names() -> Iterator[tuple[str, str]]:
    """A new name under the source's root for every bind (no entry has it)."""
    while True:
        yield f"uid=nobody-{uuid.uuid4().hex[:12]},{PEOPLE}", "wrong-password"


@pytest.mark.timeout(60)
def test_unknown_name_and_wrong_password_look_the_same(
    front: GatewayProcess, person: Person
) -> None:
    known, missing = interleaved(
        front.port, (person.dn, "wrong-password"), unknown_names(), SAMPLES
    )
    print(
        f"\njit {front.jit_interval_seconds} s: wrong password median "
        f"{known.median * 1000:.3f} ms, unknown name median {missing.median * 1000:.3f} ms "
        f"({(missing.median - known.median) / known.median:+.1%})"
    )
    assert known.answers == missing.answers
    assert len(known.answers) == 1
    ((code, _),) = known.answers
    assert code == INVALID_CREDENTIALS
    larger = max(known.median, missing.median)
    assert abs(known.median - missing.median) <= TOLERANCE * larger, (
        f"wrong password {known.median * 1000:.3f} ms, unknown name "
        f"{missing.median * 1000:.3f} ms (medians of {SAMPLES})"
    )
