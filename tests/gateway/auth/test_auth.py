"""Authentication and JIT sync over the real store (SQLite and PostgreSQL), with a scripted
directory that counts every read and bind. The real-slapd scenarios are in test_auth_slapd.py.
"""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
from sqlalchemy import func, select
from twisted.internet import defer

from gateway.auth.bindcache import BindRecords
from gateway.auth.binds import Authenticator, AuthReason, RefusalPacer
from gateway.auth.jit import JitSync
from gateway.auth.jitwrites import JitWrites
from gateway.auth.lastauth import LastAuthRecorder
from gateway.auth.ratelimit import FailureLimiter
from gateway.auth.secrets import hash_secret
from gateway.config import parse_config
from gateway.directory import BindResult, DirectoryEntry, NameKind
from gateway.engine import status as rules
from gateway.engine.types import Role, Status
from gateway.errors import UpstreamUnavailable
from gateway.runtime.workers import Workers
from gateway.users.admin import UserAdministration
from gateway.users.records import state_of
from gateway.users.service import Actor, UserService
from store import users as queries
from store.models import AuthFailure
from tests.clock import Clock
from tests.reactor import blocking

PEOPLE = "ou=people,dc=example,dc=org"
SUPER = Actor("ops", Role.SUPER_ADMIN)


class ScriptedDirectory:
    """A directory whose users, passwords and faults a test sets; it counts what it is asked."""

    def __init__(self) -> None:
        self.entries: dict[str, DirectoryEntry] = {}
        self.passwords: dict[str, str] = {}
        self.must_change: set[str] = set()
        #: What a bind to a DN answers, whatever the password (AD's 775, ...), or only to the
        #: right password (AD's 533 and 701): dn -> (answer, only to the right password).
        self.answers: dict[str, tuple[BindResult, bool]] = {}
        self.reads = 0
        self.binds: list[str] = []
        self.fail_reads = False
        self.read_delay = 0.0
        self.held: HeldRead | None = None
        self.unavailable = False
        self._lock = threading.Lock()

    def add(self, uid: str, password: str, **attributes: str) -> DirectoryEntry:
        dn = f"uid={uid},{PEOPLE}"
        attrs = {"uid": (uid,), "cn": (uid.title(),), "entryuuid": (f"uuid-{uid}",)}
        attrs.update({k.lower(): (v,) for k, v in attributes.items()})
        entry = DirectoryEntry(dn=dn, external_id=f"uuid-{uid}", attributes=attrs)
        self.entries[entry.external_id] = entry
        self.passwords[dn.lower()] = password
        return entry

    def change(self, uid: str, **attributes: str | None) -> None:
        entry = self.entries[f"uuid-{uid}"]
        attrs = dict(entry.attributes)
        for name, value in attributes.items():
            if value is None:
                attrs.pop(name.lower(), None)
            else:
                attrs[name.lower()] = (value,)
        self.entries[entry.external_id] = replace(entry, attributes=attrs)

    def _read(self) -> None:
        with self._lock:
            self.reads += 1
        if self.read_delay:
            time.sleep(self.read_delay)  # a slow directory: the scenario, not a wait
        if self.held is not None:
            self.held.hold()
        if self.fail_reads:
            raise UpstreamUnavailable("no directory server reachable for source corp")

    def hold_reads(self) -> "HeldRead":
        """Make every read wait until the test answers it (a read past any deadline)."""
        self.held = HeldRead()
        return self.held

    def find_user(self, kind: NameKind, value: str) -> DirectoryEntry | None:
        self._read()
        for entry in self.entries.values():
            if kind is NameKind.LOGIN and entry.attributes["uid"][0].lower() == value.lower():
                return entry
            if kind is NameKind.DN and entry.dn.lower() == value.lower().replace(" ", ""):
                return entry
        return None

    def read_user(self, external_id: str) -> DirectoryEntry | None:
        self._read()
        return self.entries.get(external_id)

    def verify(self, dn: str, password: str) -> "defer.Deferred[BindResult]":
        """The bind check as the Authenticator calls it: a Deferred (answered at once)."""
        return defer.maybeDeferred(self.verify_password, dn, password)

    def verify_password(self, dn: str, password: str) -> BindResult:
        assert password, "an empty password reached the directory"
        with self._lock:
            self.binds.append(dn)
        if self.unavailable:
            raise UpstreamUnavailable("no directory server reachable for source corp")
        known = {e.dn.lower() for e in self.entries.values()}
        right = dn.lower() in known and self.passwords.get(dn.lower()) == password
        answer, only_if_right = self.answers.get(dn.lower(), (None, False))
        if answer is not None and (right or not only_if_right):
            return answer
        if not right:
            return BindResult.INVALID_CREDENTIALS
        if dn.lower() in self.must_change:
            return BindResult.MUST_CHANGE_PASSWORD
        if "pwdaccountlockedtime" in self.entries[self._id(dn)].attributes:
            return BindResult.INVALID_CREDENTIALS  # as ppolicy answers a locked account
        return BindResult.OK

    def _id(self, dn: str) -> str:
        return next(e.external_id for e in self.entries.values() if e.dn.lower() == dn.lower())


class HeldRead:
    """Reads that answer when the test says so, and tell when they have answered."""

    # Lets a read go on its own if the test never answers it, so a gateway that waits for
    # the read fails an assertion instead of hanging the suite.
    SAFETY_SECONDS = 30

    def __init__(self) -> None:
        self._release = threading.Event()
        self.answered = threading.Event()

    def hold(self) -> None:
        self._release.wait(self.SAFETY_SECONDS)
        self.answered.set()

    def answer(self) -> None:
        self._release.set()


CONFIG = {
    "ldap": {"default_sources": ["corp", "hr"]},
    "sync": {"failed_auth_limit": 3, "jit_deadline_seconds": 0.5},
    "sources": [
        {
            "id": "corp",
            "kind": "ldap",
            "urls": ["ldap://127.0.0.1:1"],
            "bind_dn": "cn=idgate,ou=services,dc=example,dc=org",
            "bind_password": "x",
            "roots": [PEOPLE],
            "attributes": {"sms_phone": "mobile"},
            "status": {
                "disabled_attribute": "pwdAccountLockedTime",
                "expiration_attribute": "shadowExpire",
                "expiration_format": "days",
            },
        },
        {"id": "hr", "kind": "scim", "token_hash": hash_secret("hr-token")},
    ],
}


class Gateway:
    def __init__(self, store, clock: Clock, directory: ScriptedDirectory, **sync: float) -> None:
        self.config = parse_config({**CONFIG, "sync": {**CONFIG["sync"], **sync}}, {})
        self.store, self.clock, self.directory = store, clock, directory
        with store.writing() as session:
            queries.ensure_sources(session, [("corp", "ldap"), ("hr", "scim")], clock())
        self.users = UserService(clock=clock)
        self.admin = UserAdministration(store, clock=clock)
        self.pool = ThreadPoolExecutor(16)
        self.workers = Workers(16)
        self.marks = JitWrites(store)
        self.records = BindRecords(store)
        self.jit = JitSync(
            store,
            self.users,
            self.config.sync,
            self.pool,
            clock=clock,
            writes=self.marks,
            remember=self.records.remember,
        )
        self.recorder = LastAuthRecorder(store, interval_seconds=3600)
        self.limiter = FailureLimiter(store, 3, 300, clock=clock)
        self.authenticator = Authenticator(
            self.config,
            store,
            self.jit,
            {"corp": directory},
            self.limiter,
            self.recorder,
            offload=self.workers,
            clock=clock,
            records=self.records,
        )
        self.auth = Blocking(self.authenticator, self.marks)

    def record(self, uid: str):
        with self.store.reading() as session:
            user = queries.find_by_user_name_key(session, "corp", uid)
            assert user is not None, f"{uid} has no record"
            user.phones  # noqa: B018 - loaded while the session is open
            return user

    def close(self) -> None:
        self.recorder.close()
        self.marks.close()
        self.records.close()
        self.workers.stop()
        self.pool.shutdown()


class Blocking:
    """The Authenticator as a test thread calls it: each bind runs on the reactor's thread
    (where the Authenticator lives) and the caller waits for its outcome."""

    def __init__(self, authenticator: Authenticator, writes: JitWrites) -> None:
        self.authenticator = authenticator
        self._writes = writes
        self._pacer = authenticator._pacer

    def authenticate(self, name: str, password: str, *, settled: bool = True):
        """One bind; with `settled`, once its group-committed sync mark is in the store too
        (what the tests then read of the record)."""
        outcome = blocking(self.authenticator.authenticate, name, password)
        if settled:
            assert self._writes.flush()
        return outcome

    def route(self, name: str):
        return self.authenticator.route(name)

    @property
    def waiting(self) -> int:
        return blocking(lambda: self.authenticator.waiting)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def directory() -> ScriptedDirectory:
    d = ScriptedDirectory()
    d.add("alice", "alice-pw", mobile="+1 555-0100")
    d.add("dave", "dave-pw")
    return d


@pytest.fixture
def gw(store, clock, directory):
    gateway = Gateway(store, clock, directory)
    yield gateway
    gateway.close()


def test_empty_password_is_refused_without_reaching_the_directory(gw, directory):
    outcome = gw.auth.authenticate("alice", "")
    assert outcome.reason is AuthReason.INVALID_CREDENTIALS
    assert (directory.reads, directory.binds) == (0, [])


def test_first_bind_adds_the_user_and_succeeds(gw, directory):
    outcome = gw.auth.authenticate("ALICE", "alice-pw")
    assert outcome.ok and outcome.password_verified
    assert outcome.dn == f"uid=alice,{PEOPLE}"
    record = gw.record("alice")
    assert record.status == "active"
    assert [p.number for p in record.phones] == ["+1 555-0100"]
    assert directory.reads == 1


def test_last_auth_is_written_in_batches_not_per_bind(gw, store):
    gw.auth.authenticate("alice", "alice-pw")
    assert gw.record("alice").last_auth_at is None  # nothing committed on the bind itself
    assert gw.recorder.flush() == 1
    assert gw.record("alice").last_auth_at == gw.clock.now


def test_unknown_user_and_wrong_password_look_the_same(gw, directory):
    gw.auth.authenticate("alice", "alice-pw")  # alice has a record, synced just now
    directory.binds.clear()
    reads = directory.reads
    wrong = gw.auth.authenticate("alice", "nope")
    unknown = gw.auth.authenticate("mallory", "nope")
    assert wrong == replace(unknown, user_id=wrong.user_id, source_id=wrong.source_id, dn=wrong.dn)
    assert wrong.reason is AuthReason.INVALID_CREDENTIALS and not wrong.password_verified
    # Both cost one bind upstream; the unknown name's bind goes to a DN no entry can have.
    assert len(directory.binds) == 2
    assert directory.binds[1].startswith("cn=idgate-no-such-user,")
    # A second try of the unknown name within the window does not search again.
    gw.auth.authenticate("mallory", "nope2")
    assert directory.reads == reads + 1


def test_inside_the_window_no_read_after_it_one_read(gw, directory, clock):
    gw.auth.authenticate("alice", "alice-pw")
    clock.advance(seconds=299)
    assert gw.auth.authenticate("alice", "alice-pw").ok
    assert directory.reads == 1
    clock.advance(seconds=2)
    assert gw.auth.authenticate("alice", "alice-pw").ok
    assert directory.reads == 2


def test_disabled_upstream_is_disabled_by_this_very_sync(gw, directory, clock):
    gw.auth.authenticate("alice", "alice-pw")
    clock.advance(seconds=301)
    directory.change("alice", pwdAccountLockedTime="000001010000Z")
    outcome = gw.auth.authenticate("alice", "alice-pw")
    assert outcome.reason is AuthReason.INVALID_CREDENTIALS  # the directory refused the bind
    record = gw.record("alice")
    assert (record.status, record.reason) == ("disabled", "source_disabled")


def test_expired_upstream_is_refused_with_the_reason_after_the_password_checks(
    gw, directory, clock
):
    gw.auth.authenticate("alice", "alice-pw")
    clock.advance(seconds=301)
    directory.change("alice", shadowExpire="1")  # slapd does not enforce it; idgate must
    outcome = gw.auth.authenticate("alice", "alice-pw")
    assert outcome.reason is AuthReason.ACCOUNT_EXPIRED and outcome.password_verified
    assert gw.record("alice").reason == "source_expired"


def test_deleted_upstream_is_missing(gw, directory, clock):
    gw.auth.authenticate("alice", "alice-pw")
    clock.advance(seconds=301)
    del directory.entries["uuid-alice"]
    outcome = gw.auth.authenticate("alice", "alice-pw")
    assert outcome.reason is AuthReason.INVALID_CREDENTIALS  # the entry is gone: bind fails
    assert (gw.record("alice").status, gw.record("alice").reason) == ("disabled", "missing")


def test_disabled_new_user_is_not_added_and_refused(gw, directory):
    directory.add("bob", "bob-pw", pwdAccountLockedTime="000001010000Z")
    assert gw.auth.authenticate("bob", "bob-pw").reason is AuthReason.INVALID_CREDENTIALS
    with gw.store.reading() as session:
        assert queries.find_by_user_name_key(session, "corp", "bob") is None


def test_must_change_password_is_not_a_success(gw, directory):
    directory.must_change.add(f"uid=dave,{PEOPLE}")
    outcome = gw.auth.authenticate("dave", "dave-pw")
    assert outcome.reason is AuthReason.PASSWORD_MUST_CHANGE and outcome.password_verified


def test_failed_read_decides_from_cache_and_the_next_attempt_retries(gw, directory, clock):
    gw.auth.authenticate("alice", "alice-pw")
    clock.advance(seconds=301)
    directory.fail_reads = True
    assert gw.auth.authenticate("alice", "alice-pw").ok  # cached record: active
    directory.fail_reads = False
    reads = directory.reads
    assert gw.auth.authenticate("alice", "alice-pw").ok
    assert directory.reads == reads + 1  # retried at once, no window started by the failure


def test_read_past_the_deadline_decides_from_cache_and_counts_failed(gw, directory, clock):
    gw.auth.authenticate("alice", "alice-pw")
    synced = gw.record("alice").last_sync_at
    clock.advance(seconds=301)
    directory.change("alice", shadowExpire="1")  # what the late read would find
    late = directory.hold_reads()  # the read outlives the 0.5 s deadline
    outcome = gw.auth.authenticate("alice", "alice-pw")
    assert not late.answered.is_set(), "the bind waited for the read instead of its deadline"
    assert outcome.ok  # decided from the cached record, which says active
    late.answer()  # the late answer arrives now, and must be dropped
    assert late.answered.wait(30), "the late read had not returned 30 s after its release"
    record = gw.record("alice")
    assert (record.status, record.last_sync_at) == ("active", synced)
    assert record.sync_claim_until is None  # the next attempt may read at once
    directory.held = None
    assert gw.auth.authenticate("alice", "alice-pw").reason is AuthReason.ACCOUNT_EXPIRED


def test_directory_unavailable_is_its_own_reason_and_not_a_failure(gw, directory):
    gw.auth.authenticate("alice", "alice-pw")
    directory.unavailable = True
    for _ in range(5):
        assert gw.auth.authenticate("alice", "alice-pw").reason is AuthReason.DIRECTORY_UNAVAILABLE
    directory.unavailable = False
    assert gw.auth.authenticate("alice", "alice-pw").ok  # never rate-limited by outages


def test_repeated_failures_are_refused_before_the_directory(gw, directory):
    for _ in range(3):
        gw.auth.authenticate("alice", "wrong")
    binds = len(directory.binds)
    assert gw.auth.authenticate("alice", "alice-pw").reason is AuthReason.RATE_LIMITED
    assert gw.auth.authenticate("ALICE", "wrong").reason is AuthReason.RATE_LIMITED
    assert len(directory.binds) == binds


def test_renamed_upstream_binds_with_the_new_dn(gw, directory, clock):
    gw.auth.authenticate("alice", "alice-pw")
    clock.advance(seconds=301)
    entry = directory.entries["uuid-alice"]
    moved = replace(entry, dn=f"uid=alice,ou=staff,{PEOPLE}")
    directory.entries["uuid-alice"] = moved
    directory.passwords[moved.dn.lower()] = "alice-pw"
    outcome = gw.auth.authenticate("alice", "alice-pw")
    assert outcome.ok
    assert gw.record("alice").dn == moved.dn


def test_admin_disabled_user_is_refused_after_the_password(gw):
    gw.auth.authenticate("alice", "alice-pw")
    gw.admin.disable(SUPER, gw.record("alice").id)
    outcome = gw.auth.authenticate("alice", "alice-pw")
    assert outcome.reason is AuthReason.ACCOUNT_DISABLED and outcome.password_verified


def test_never_used_pending_user_is_revived_by_authenticating_inside_the_window(gw, store):
    gw.auth.authenticate("alice", "alice-pw")
    user = gw.record("alice")
    with store.writing() as session:
        row = queries.get_user(session, user.id)
        marked = rules.mark_never_used(state_of(row), gw.clock())
        row.status, row.disabled_by, row.reason = "disabled", "cleanup", "never_used"
        row.pending_deletion_since = marked.pending_deletion_since
    assert gw.auth.authenticate("alice", "alice-pw").ok
    assert gw.record("alice").status == Status.ACTIVE.value


def test_scim_user_with_a_password_binds_by_name_and_dn(gw):
    from gateway.engine.plan import SourceUser
    from gateway.engine.types import SourceStatus, Trigger

    with gw.store.writing() as session:
        gw.users.apply_report(
            session,
            "hr",
            SourceUser("scim-1", "Zed", SourceStatus.ENABLED, password_hash=hash_secret("zed-pw")),
            Trigger.PROVISIONING,
        )
    assert gw.auth.authenticate("zed", "zed-pw").ok
    by_dn = gw.auth.authenticate("uid=Zed,ou=hr,dc=idgate", "zed-pw")
    assert by_dn.ok and by_dn.dn == "uid=Zed,ou=hr,dc=idgate"
    assert gw.auth.authenticate("zed", "wrong").reason is AuthReason.INVALID_CREDENTIALS


@pytest.mark.parametrize("known", [True, False], ids=["known-user", "new-user"])
def test_concurrent_binds_cause_exactly_one_read(store, directory, clock, known):
    # A deadline far above the read's 0.1 s: on a loaded machine a winner passing a tight
    # deadline rightly gives its claim back, and a second read would then be correct.
    gw = Gateway(store, clock, directory, jit_deadline_seconds=10)
    try:
        _concurrent_binds_read_once(gw, directory, clock, known)
    finally:
        gw.close()


def _concurrent_binds_read_once(gw, directory, clock, known):
    if known:
        gw.auth.authenticate("alice", "alice-pw")
        clock.advance(seconds=301)
    directory.read_delay = 0.1
    reads = directory.reads
    barrier = threading.Barrier(40)
    outcomes = []

    def bind() -> None:
        barrier.wait()
        outcomes.append(gw.auth.authenticate("alice", "alice-pw"))

    threads = [threading.Thread(target=bind) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert directory.reads == reads + 1
    assert all(o.ok for o in outcomes), {o.reason for o in outcomes}


@pytest.mark.parametrize("known", [True, False], ids=["known-user", "new-user"])
def test_concurrent_binds_in_one_process_wait_on_the_read_in_flight(
    store, directory, clock, known, monkeypatch
):
    """Binds of one user arriving while its read is in flight wait for that read's result
    (an event in the process): one claim of the window in the store, no polling of it."""
    gw = Gateway(store, clock, directory, jit_deadline_seconds=10)
    calls: list[str] = []

    def counting(name: str):
        original = getattr(queries, name)

        def counted(*args, **kwargs):
            calls.append(name)
            return original(*args, **kwargs)

        return counted

    for name in ("claim_sync_window", "claim_name_window", "user_claim_live", "name_claim_live"):
        monkeypatch.setattr(queries, name, counting(name))
    try:
        if known:
            assert gw.auth.authenticate("alice", "alice-pw").ok
            clock.advance(seconds=301)
        calls.clear()
        reads = directory.reads
        held = directory.hold_reads()
        outcomes = []

        def bind() -> None:
            outcomes.append(gw.auth.authenticate("alice", "alice-pw"))

        threads = [threading.Thread(target=bind) for _ in range(20)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while gw.auth.waiting < 19 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gw.auth.waiting == 19, "the other binds did not wait on the read in flight"
        held.answer()
        for t in threads:
            t.join()
    finally:
        directory.held = None
        gw.close()
    assert directory.reads == reads + 1
    assert all(o.ok for o in outcomes), {o.reason for o in outcomes}
    assert calls == ["claim_sync_window" if known else "claim_name_window"]


def _until(condition, what: str, seconds: float = 30) -> None:
    """Wait for `condition` (read on the reactor's thread) with a deadline."""
    deadline = time.monotonic() + seconds
    while not blocking(condition):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_five_hundred_binds_of_one_due_user_make_one_read(store, directory, clock):
    """A burst of binds of one JIT-due user: one upstream read, one claim, every bind OK,
    and the 499 that wait hold no thread (they wait on a Deferred)."""
    gw = Gateway(store, clock, directory, jit_deadline_seconds=10)
    try:
        assert gw.auth.authenticate("alice", "alice-pw").ok
        clock.advance(seconds=301)
        reads = directory.reads
        held = directory.hold_reads()
        binds = blocking(
            lambda: [gw.authenticator.authenticate("alice", "alice-pw") for _ in range(500)]
        )
        _until(lambda: gw.authenticator.waiting == 499, "499 binds waiting on the read")
        # One read in flight: the pool holds one JIT sync, not 500 waiting threads.
        assert blocking(lambda: len(gw.workers.pool.working)) <= 1
        held.answer()
        outcomes = blocking(lambda: defer.gatherResults(binds))
    finally:
        directory.held = None
        gw.close()
    assert directory.reads == reads + 1
    assert all(o.ok for o in outcomes), {o.reason for o in outcomes}


def test_binds_waiting_on_a_hung_directory_leave_in_window_binds_answered(store, directory, clock):
    """200 JIT-due binds wait on reads that hang and fill every thread of the pool; a user
    inside the JIT window is still answered, from memory and on the loop, meanwhile."""
    gw = Gateway(store, clock, directory, jit_deadline_seconds=10)
    users = [f"u{i:03d}" for i in range(200)]
    try:
        assert gw.records.wait_ready(10), "the bind records never became current"
        for uid in users:
            directory.add(uid, f"{uid}-pw")
            assert gw.auth.authenticate(uid, f"{uid}-pw").ok
        clock.advance(seconds=301)
        for _ in range(2):  # read upstream (due), then read from the store into memory
            assert gw.auth.authenticate("alice", "alice-pw").ok
        held = directory.hold_reads()
        binds = blocking(lambda: [gw.authenticator.authenticate(uid, f"{uid}-pw") for uid in users])
        _until(lambda: len(gw.workers.pool.working) == 16, "every pool thread on a hung read")
        bound = [gw.auth.authenticate("alice", "alice-pw") for _ in range(20)]
        still_held = not held.answered.is_set()
        held.answer()
        outcomes = blocking(lambda: defer.gatherResults(binds))
    finally:
        directory.held = None
        gw.close()
    assert still_held, "the directory answered before the in-window binds were made"
    assert all(o.ok for o in bound), {o.reason for o in bound}
    assert all(o.ok for o in outcomes), {o.reason for o in outcomes}


# -- JIT reads that find nothing new: group commit -------------------------------------------


class HeldMarks:
    """Holds the group writer's commit until the test lets it go."""

    def __init__(self, monkeypatch) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.batches: list[int] = []
        original = queries.mark_each_synced

        def held(session, marks):
            if not self.entered.is_set():
                self.entered.set()
                assert self.release.wait(30), "the test never let the commit go"
            self.batches.append(len(marks))
            return original(session, marks)

        monkeypatch.setattr(queries, "mark_each_synced", held)


def test_an_unchanged_read_answers_the_bind_before_its_mark_commits(gw, clock, monkeypatch):
    assert gw.auth.authenticate("alice", "alice-pw").ok
    synced = gw.record("alice").last_sync_at
    clock.advance(seconds=301)
    held = HeldMarks(monkeypatch)

    outcome = gw.auth.authenticate("alice", "alice-pw", settled=False)

    assert outcome.ok
    assert held.entered.wait(10)
    # Answered; the mark is still uncommitted: the store has the old sync and the claim.
    record = gw.record("alice")
    assert record.last_sync_at == synced and record.sync_claim_until is not None
    held.release.set()
    assert gw.marks.flush()
    record = gw.record("alice")
    assert record.last_sync_at == clock() and record.sync_claim_until is None


def test_claims_and_marks_queued_during_a_commit_share_the_next_ones(
    store, directory, clock, monkeypatch
):
    """Group commit: the JIT-due binds that arrive while a commit runs have their claims and
    marks written together, in a few transactions instead of two each."""
    gw = Gateway(store, clock, directory, jit_deadline_seconds=10)
    users = [f"m{i:02d}" for i in range(30)]
    try:
        for uid in users:
            directory.add(uid, f"{uid}-pw")
            assert gw.auth.authenticate(uid, f"{uid}-pw").ok
        clock.advance(seconds=301)
        held = HeldMarks(monkeypatch)
        assert gw.auth.authenticate(users[0], f"{users[0]}-pw", settled=False).ok
        assert held.entered.wait(10)  # answered; its mark's commit is held
        commits = gw.marks.commits
        binds = blocking(
            lambda: [gw.authenticator.authenticate(uid, f"{uid}-pw") for uid in users[1:]]
        )
        held.release.set()
        outcomes = blocking(lambda: defer.gatherResults(binds))
        assert gw.marks.flush()
        assert all(o.ok for o in outcomes), {o.reason for o in outcomes}
        # 29 claims and 30 marks; alone they would be 59 commits.
        assert gw.marks.commits - commits <= 12, gw.marks.commits - commits
        assert sum(held.batches) == 30
        assert all(gw.record(uid).sync_claim_until is None for uid in users)
    finally:
        gw.close()


def test_a_mark_the_store_refuses_costs_a_read_not_a_status(gw, directory, clock, monkeypatch):
    from sqlalchemy.exc import OperationalError

    assert gw.auth.authenticate("alice", "alice-pw").ok
    clock.advance(seconds=301)

    def refused(session, marks):
        raise OperationalError("UPDATE users", {}, Exception("database is locked"))

    monkeypatch.setattr(queries, "mark_each_synced", refused)
    reads = directory.reads
    assert gw.auth.authenticate("alice", "alice-pw").ok
    monkeypatch.undo()
    # The claim stands until it runs out (2 x deadline + 1 s); then the next bind reads again
    # and a change upstream is applied in full.
    directory.change("alice", shadowExpire="1")
    clock.advance(seconds=3)
    outcome = gw.auth.authenticate("alice", "alice-pw")
    assert directory.reads == reads + 2
    assert outcome.reason is AuthReason.ACCOUNT_EXPIRED, outcome
    assert (gw.record("alice").status, gw.record("alice").reason) == ("disabled", "source_expired")


# -- names no source can hold (issue: a name the configuration routes nowhere) -------------


@pytest.mark.parametrize(
    "name",
    [
        "alice\x00",
        "\x00alice",
        "ali\x01ce",
        "alice\n",
        "alice\x7f",
        f"uid=alice\x00,{PEOPLE}",
        f"uid=alice\\00,{PEOPLE}",  # the same NUL as an RFC 4514 escape
        f"uid=alice\\0a,{PEOPLE}",
        "uid=zed,ou=elsewhere,dc=example,dc=com",  # under no source's root
        "nobody\\alice",  # no AD source has that NetBIOS domain
    ],
)
def test_a_name_no_source_can_hold_is_refused_without_any_work(gw, directory, monkeypatch, name):
    import gateway.auth.binds as auth_module

    def no_hash(*args: object) -> bool:
        raise AssertionError("an argon2 check for a name no source can hold")

    monkeypatch.setattr(auth_module, "verify_secret", no_hash)
    settled: list[object] = []
    monkeypatch.setattr(gw.auth._pacer, "pace", lambda *args: settled.append(args) or 0.0)
    assert gw.auth.route(name) == []
    outcome = gw.auth.authenticate(name, "alice-pw")
    assert outcome == gw.auth.authenticate("nobody-at-all\x00", "x")
    assert outcome.reason is AuthReason.INVALID_CREDENTIALS and not outcome.password_verified
    assert (directory.reads, directory.binds) == (0, [])
    assert settled == []  # refusals of such names never move the pacer's targets
    with gw.store.reading() as session:  # and write nothing
        assert session.scalar(select(func.count()).select_from(AuthFailure)) == 0


def test_a_name_that_routes_somewhere_has_its_route(gw):
    assert [s.source.id for s in gw.auth.route("mallory")] == ["corp", "hr"]
    assert [s.source.id for s in gw.auth.route(f"uid=mallory,{PEOPLE}")] == ["corp"]
    assert [s.source.id for s in gw.auth.route("uid=zed,ou=hr,dc=idgate")] == ["hr"]


def test_refusals_are_paced_per_route_so_slow_ones_never_slow_the_others():
    now = [0.0]
    pacer = RefusalPacer(monotonic=lambda: now[0])
    for _ in range(10):  # a SCIM source's refusals: an argon2 check each
        pacer.pace(False, now[0] - 0.18, ("hr",))
    waits = [pacer.pace(True, now[0] - 0.010, ("corp",))]
    waits.append(pacer.pace(False, now[0] - 0.002, ("corp",)))
    assert waits == [0.0, pytest.approx(0.008)]  # padded to corp's slower kind, not to hr's


# -- what Active Directory says only to the right password (533, 701) ----------------------


def test_ad_disabled_answer_says_disabled_where_the_record_agrees(gw, directory, clock):
    gw.auth.authenticate("alice", "alice-pw")
    clock.advance(seconds=301)
    directory.change("alice", pwdAccountLockedTime="000001010000Z")  # the record: disabled
    directory.answers[f"uid=alice,{PEOPLE}".lower()] = (BindResult.ACCOUNT_DISABLED, True)
    outcome = gw.auth.authenticate("alice", "alice-pw")
    assert outcome.reason is AuthReason.ACCOUNT_DISABLED and outcome.password_verified
    wrong = gw.auth.authenticate("alice", "wrong")
    assert wrong.reason is AuthReason.INVALID_CREDENTIALS and not wrong.password_verified


def test_ad_expired_answer_says_expired_where_the_record_agrees(gw, directory, clock):
    gw.auth.authenticate("alice", "alice-pw")
    clock.advance(seconds=301)
    directory.change("alice", shadowExpire="1")
    directory.answers[f"uid=alice,{PEOPLE}".lower()] = (BindResult.ACCOUNT_EXPIRED, True)
    outcome = gw.auth.authenticate("alice", "alice-pw")
    assert outcome.reason is AuthReason.ACCOUNT_EXPIRED and outcome.password_verified


def test_ad_disabled_answer_against_an_active_record_says_nothing_more(gw, directory):
    gw.auth.authenticate("alice", "alice-pw")  # active, and inside its JIT window
    directory.answers[f"uid=alice,{PEOPLE}".lower()] = (BindResult.ACCOUNT_DISABLED, True)
    outcome = gw.auth.authenticate("alice", "alice-pw")
    assert outcome.reason is AuthReason.ACCOUNT_DISABLED and not outcome.password_verified


def test_a_locked_account_never_says_more_than_invalid_credentials(gw, directory, clock):
    gw.auth.authenticate("alice", "alice-pw")
    clock.advance(seconds=301)
    directory.change("alice", pwdAccountLockedTime="000001010000Z")
    directory.answers[f"uid=alice,{PEOPLE}".lower()] = (BindResult.ACCOUNT_LOCKED, False)
    outcome = gw.auth.authenticate("alice", "alice-pw")
    assert outcome.reason is AuthReason.ACCOUNT_LOCKED and not outcome.password_verified
