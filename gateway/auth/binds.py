"""Authentication of a simple bind (SPEC §5.1, §6): `Authenticator.authenticate(name, password)`.

For a directory user the password is checked by the directory (a bind as the DN that an
escaped search returned) while the JIT sync of that user runs; success needs both a verified
password and an active record after the sync. Users of `scim` and `local` sources bind against
their argon2 hash in the store.

What the caller learns is the outcome's reason. Unknown users and wrong passwords give the
same reason, and take the same path upstream: a name the directory does not know is still
answered with a bind (to a DN that cannot exist). The work around that bind still differs (a
user in the JIT window needs no read, an unknown name is read upstream first, a user whose
sync is due is read and written back), so `RefusalPacer` makes both kinds of refusal take
the same time (tests/resilience/test_timing.py measures it through the LDAP front). The wait
is the front's: the outcome says how long to hold the answer (`AuthOutcome.answer_after`),
and the LDAP front holds it with a timer on its event loop, never a thread.
"""

import functools
import logging
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, cast

from twisted.internet import defer

from gateway.auth.jit import CachedUser, Freshness, JitResult, JitSync, UserDirectory
from gateway.auth.lastauth import LastAuthRecorder
from gateway.auth.ratelimit import FailureLimiter, Tally
from gateway.auth.routing import Subject, subjects
from gateway.auth.secrets import hash_secret, verify_secret
from gateway.config import AdSource, Config, LdapSource
from gateway.directory import BindResult
from gateway.engine.types import DisabledBy, Reason
from gateway.errors import UpstreamError
from gateway.users.names import dn_key, member_dn
from store.db import Store

log = logging.getLogger(__name__)


class AuthReason(StrEnum):
    SUCCESS = "success"
    INVALID_CREDENTIALS = "invalid_credentials"
    ACCOUNT_DISABLED = "account_disabled"
    ACCOUNT_EXPIRED = "account_expired"
    ACCOUNT_MISSING = "account_missing"
    PENDING_DELETION = "pending_deletion"
    ACCOUNT_LOCKED = "account_locked"
    PASSWORD_MUST_CHANGE = "password_must_change"  # noqa: S105 - a reason, not a password
    PASSWORD_EXPIRED = "password_expired"  # noqa: S105 - a reason, not a password
    DIRECTORY_UNAVAILABLE = "directory_unavailable"
    RATE_LIMITED = "rate_limited"


@dataclass(frozen=True)
class AuthOutcome:
    reason: AuthReason
    #: The password was verified (only then may a front say more than "invalid credentials").
    password_verified: bool = False
    user_id: str | None = None
    source_id: str | None = None
    #: The DN the user is known by (for WhoAmI and the LDAP front's bound identity).
    dn: str | None = None
    #: Seconds the front holds this answer before sending it (`RefusalPacer`).
    answer_after: float = 0.0

    @property
    def ok(self) -> bool:
        return self.reason is AuthReason.SUCCESS


_REFUSED = AuthOutcome(AuthReason.INVALID_CREDENTIALS)

# Bind answers that prove the password right although the bind is not a success (SPEC §6).
_VERIFIED_BUT = {
    BindResult.MUST_CHANGE_PASSWORD: AuthReason.PASSWORD_MUST_CHANGE,
    BindResult.PASSWORD_EXPIRED: AuthReason.PASSWORD_EXPIRED,
}
# Bind answers about the account that AD may give whatever the password: nothing is verified.
_ACCOUNT_REFUSALS = {
    BindResult.ACCOUNT_DISABLED: AuthReason.ACCOUNT_DISABLED,
    BindResult.ACCOUNT_EXPIRED: AuthReason.ACCOUNT_EXPIRED,
    BindResult.ACCOUNT_LOCKED: AuthReason.ACCOUNT_LOCKED,
    BindResult.NOT_PERMITTED: AuthReason.ACCOUNT_DISABLED,
    BindResult.INVALID_CREDENTIALS: AuthReason.INVALID_CREDENTIALS,
}
_REASON_FOR_RECORD = {
    Reason.SOURCE_DISABLED: AuthReason.ACCOUNT_DISABLED,
    Reason.SOURCE_EXPIRED: AuthReason.ACCOUNT_EXPIRED,
    Reason.MISSING: AuthReason.ACCOUNT_MISSING,
    Reason.ADMIN: AuthReason.ACCOUNT_DISABLED,
    Reason.NEVER_USED: AuthReason.ACCOUNT_DISABLED,
}


#: Bind answers that Active Directory gives only to the right password.
_SAID_ONLY_TO_THE_PASSWORD = frozenset({BindResult.ACCOUNT_DISABLED, BindResult.ACCOUNT_EXPIRED})


def _record_reason(user: CachedUser | None, jit: JitResult | None) -> AuthReason | None:
    """Why the record refuses the user (None: it does not): the stored state, or for a user
    the sync did not add, why it was not added."""
    if user is None:
        if jit is not None and jit.sync is not None and jit.sync.not_added is not None:
            return _REASON_FOR_RECORD[jit.sync.not_added]
        return None
    state = user.state
    if state.active:
        return None
    if state.pending_deletion and state.disabled_by is not DisabledBy.ADMIN:
        return AuthReason.PENDING_DELETION
    assert state.reason is not None
    return _REASON_FOR_RECORD[state.reason]


@functools.cache
def _decoy_hash() -> str:
    """A real argon2 hash with the production parameters, made once per process: hashing
    costs about 0.25 s of CPU, and every runtime builds an Authenticator."""
    return hash_secret("idgate-decoy-password")


class RefusalPacer:
    """Refusals for invalid credentials take as long as the slower kind of refusal usually
    does (the 75th percentile of its last `samples`): a name the store holds, or a name it
    does not. Padding to a point above both kinds' medians makes the pad itself the median of
    both, however the work of each varies with the machine's load; padding to the slower
    kind's median left the two medians 12 % apart on a loaded machine.

    Otherwise the latency of a wrong password tells a client which names exist, although the
    answer does not (SPEC §6: "the same answer in the same time"). The wait never exceeds
    what the slower kind costs (and `most`), and it holds no thread: `pace` says how long,
    and the front waits on a timer of its event loop.

    Times are kept per *route*: the sources a name is looked up in, which follow from the
    configuration and the form of the name alone, so a client knows them already. Names of
    one route are paced to each other; a route whose refusals are slow (a SCIM source's
    argon2 check) never raises the refusals of another (a directory's bind), so a flood of
    one kind of name cannot slow every refusal.
    """

    def __init__(
        self,
        samples: int = 64,
        most: float = 0.5,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._samples = samples
        self._most = most
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._took: dict[tuple[str, ...], dict[bool, deque[float]]] = {}

    def pace(self, known: bool, started: float, route: tuple[str, ...] = ()) -> float:
        """A refusal that began at `started` (`monotonic`): how many more seconds its answer
        waits to take the paced time (0 when it took that long already)."""
        took = self._monotonic() - started
        with self._lock:
            kinds = self._took.get(route)
            if kinds is None:
                kinds = self._took[route] = {k: deque(maxlen=self._samples) for k in (False, True)}
            kinds[known].append(took)
            target = max(_upper_quartile(t) for t in kinds.values() if t)
        return max(min(target, self._most) - took, 0.0)


def _upper_quartile(values: deque[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=4)[2]


class Runner(Protocol):
    """Runs a blocking call on a bounded pool; its Deferred fires on the event loop."""

    def __call__(self, call: Callable[..., Any], /, *args: Any) -> "defer.Deferred[Any]": ...


class BindRecords(Protocol):
    """The bind records of this process's memory (`gateway.auth.bindcache.BindRecords`)."""

    def cached(
        self, subject: Subject, *, failures_since: datetime | None = None
    ) -> CachedUser | None: ...

    def lookup(self, subject: Subject, *, failures_since: datetime) -> CachedUser | None: ...


@dataclass
class _Flight:
    """A JIT sync in flight in this process, that concurrent binds of the user share."""

    waiting: list["defer.Deferred[JitResult]"] = field(default_factory=list)


class Authenticator:
    """Checks simple binds on the event loop (SPEC §6).

    A bind's whole life runs as a coroutine on the loop: the record from memory, the
    directory's bind (`UserDirectory.verify`, a Deferred), the decision and the paced answer.
    What blocks goes to `offload` at the leaves: a record this process has not cached, the
    JIT sync (a claim, an upstream read and a write), a failure count, an argon2 check.
    Concurrent binds of one user share one JIT sync in flight: they wait on its result, a
    Deferred, and hold no thread.

    Call `authenticate` on the event loop's thread only.
    """

    def __init__(
        self,
        config: Config,
        store: Store,
        jit: JitSync,
        directories: Mapping[str, UserDirectory],
        limiter: FailureLimiter,
        recorder: LastAuthRecorder,
        *,
        offload: Runner,
        clock: Callable[[], datetime],
        records: BindRecords,
        report_jit: Callable[[str, str], None] | None = None,
        pacer: RefusalPacer | None = None,
    ) -> None:
        self._config = config
        self._store = store
        self._jit = jit
        self._directories = directories
        self._limiter = limiter
        self._recorder = recorder
        self._offload = offload
        self._clock = clock
        self._records = records
        #: Told (source id, freshness) of every JIT decision, for the metrics.
        self._report_jit = report_jit or (lambda source, freshness: None)
        # Verified against when a local/SCIM name is unknown, so both cost one argon2 check.
        self._decoy_hash = _decoy_hash()
        self._pacer = pacer or RefusalPacer()
        self._flights: dict[tuple[str, ...], _Flight] = {}

    @property
    def waiting(self) -> int:
        """Binds waiting now for a JIT sync another bind of this process has in flight."""
        return sum(len(flight.waiting) for flight in self._flights.values())

    def authenticate(
        self, name: str, password: str, route: Sequence[Subject] | None = None
    ) -> "defer.Deferred[AuthOutcome]":
        """Authenticate a simple bind; the Deferred fires with the outcome.

        An empty password is an unauthenticated bind (RFC 4513 §5.1.2): refused here and never
        forwarded upstream. `route` is `self.route(name)` when the caller has it already.
        """
        return defer.ensureDeferred(self._authenticate(name, password, route))

    async def _authenticate(
        self, name: str, password: str, route: Sequence[Subject] | None
    ) -> AuthOutcome:
        if not password:
            return _REFUSED
        candidates = self.route(name) if route is None else route
        if not candidates:
            # No source can hold this name, which the configuration alone says (public): no
            # secret to hide, so no work to equalise, no store read and no failure to count.
            return _REFUSED
        started = time.monotonic()
        sources = tuple(subject.source.id for subject in candidates)  # what the pacer keys on
        last = _REFUSED
        known = False
        for subject in candidates:
            outcome, found = await self._attempt(subject, password)
            known = known or found
            if outcome.reason is not AuthReason.INVALID_CREDENTIALS or outcome.user_id:
                return self._paced(outcome, known, started, sources)
            last = outcome
        return self._paced(last, known, started, sources)

    def route(self, name: str) -> list[Subject]:
        """Where the bind name `name` is looked up (`resolve.subjects`), from the configuration
        alone: the LDAP front computes it on its event loop, refuses a name with none at once,
        and hands the rest to `authenticate`."""
        return subjects(name, self._config)

    def _paced(
        self, outcome: AuthOutcome, known: bool, started: float, route: tuple[str, ...]
    ) -> AuthOutcome:
        if outcome.reason is AuthReason.INVALID_CREDENTIALS and not outcome.password_verified:
            wait = self._pacer.pace(known, started, route)
            if wait > 0:
                return replace(outcome, answer_after=wait)
        return outcome

    async def _attempt(self, subject: Subject, password: str) -> tuple[AuthOutcome, bool]:
        """One source's answer, behind that user's failure limit (SPEC §6), and whether the
        store holds a record of that name.

        The limit counts failures per user, whatever form of the name the client used (a DN,
        a UPN and DOMAIN\\user all reach one AD account and its lockout counter); a name with
        no record yet is counted by name until the first sync gives it one.
        """
        held = self._records.cached(subject, failures_since=self._limiter.since())
        if held is not None:
            cached, tally = held, self._limiter.tally(held.id, held.recent_failures)
        else:
            # One trip to the pool for both reads: each hop costs as much as a read.
            cached, tally = await self._offload(self._read_record, subject)
        key = tally.key if cached is None else cached.id
        if tally.blocked:
            limited = AuthOutcome(AuthReason.RATE_LIMITED, source_id=subject.source.id)
            return limited, cached is not None
        if isinstance(subject.source, LdapSource | AdSource):
            outcome = await self._directory_bind(subject, password, cached)
        else:
            # An argon2 check costs tens of milliseconds of CPU: never on the loop.
            outcome = await self._offload(self._stored_password_bind, subject, password, cached)
        if outcome.ok:
            assert outcome.user_id is not None
            if tally.failures:
                await self._offload(self._limiter.succeeded, tally)
            self._recorder.record(outcome.user_id, self._clock())
        elif outcome.reason is not AuthReason.DIRECTORY_UNAVAILABLE:
            await self._offload(self._count_failure, key, outcome.user_id)
        return outcome, cached is not None

    def _read_record(self, subject: Subject) -> tuple[CachedUser | None, Tally]:
        """The record and its failure tally from the store (blocking): a name without a
        record is counted by name until the first sync gives it one."""
        since = self._limiter.since()
        cached = self._records.lookup(subject, failures_since=since)
        if cached is not None:
            return cached, self._limiter.tally(cached.id, cached.recent_failures)
        return None, self._limiter.check(f"{subject.source.id}/{subject.key}")

    def _count_failure(self, key: str, user_id: str | None) -> None:
        self._limiter.failed(key)
        if user_id and user_id != key:
            self._limiter.failed(user_id)

    # -- directory users ---------------------------------------------------------------------

    async def _directory_bind(
        self, subject: Subject, password: str, cached: CachedUser | None
    ) -> AuthOutcome:
        directory = self._directories[subject.source.id]
        if cached is not None and cached.dn and not self._jit.due(cached):
            # Inside the JIT window there is nothing to run beside the bind: no thread at all.
            bind = await self._verify(directory, cached.dn, password)
            return self._decide(subject, bind, cached, JitResult(Freshness.THROTTLED, cached))
        if cached is not None and cached.dn:
            # JIT sync and the password check run at the same time (SPEC §6): the bind is
            # sent now, on the loop; the sync's blocking leaves run in the pool meanwhile.
            pending = defer.ensureDeferred(self._verify(directory, cached.dn, password))
            jit = await self._sync(subject, directory, cached, pending)
            bind = await pending
            if not (jit.freshness is Freshness.READ and jit.entry is None):
                moved = jit.entry is not None and dn_key(jit.entry.dn) != dn_key(cached.dn)
                if bind is BindResult.INVALID_CREDENTIALS and moved and jit.entry is not None:
                    # Renamed upstream since the last sync: the cached DN no longer binds.
                    bind = await self._verify(directory, jit.entry.dn, password)
                return self._decide(subject, bind, jit.user, jit)
            # The record's entry is gone upstream (now `missing`). The name may belong to a
            # new entry (directories recycle names): look it up by name like a new user.

        # The DN comes from the JIT search: the read has to come first.
        jit = await self._sync(subject, directory, None)
        user = jit.user
        # This attempt's read gave the entry, or a concurrent attempt's read stored the user.
        entry_dn = jit.entry.dn if jit.entry else (user.dn if user else None)
        if entry_dn is None:
            return await self._unknown(subject, directory, password, jit)
        bind = await self._verify(directory, entry_dn, password)
        return self._decide(subject, bind, user, jit)

    async def _sync(
        self,
        subject: Subject,
        directory: UserDirectory,
        cached: CachedUser | None,
        pending: "defer.Deferred[Any] | None" = None,
    ) -> JitResult:
        """The JIT sync of this bind's user (`JitSync.sync`, in the pool), or, when another
        bind of this process runs it already, that sync's result: one read and one claim per
        user per process, however many binds arrive. Waiting is a Deferred, not a thread.
        A `cached` user is due (`_directory_bind` answered the others from the window)."""
        if cached is not None:
            key: tuple[str, ...] = ("user", cached.id)
        else:
            key = ("name", subject.source.id, subject.key)
        flight = self._flights.get(key)
        if flight is not None:
            waited: defer.Deferred[JitResult] = defer.Deferred()
            flight.waiting.append(waited)
            result = await waited
            if result.freshness is Freshness.READ:
                return replace(result, freshness=Freshness.SHARED)
            return result
        flight = self._flights[key] = _Flight()
        try:
            result = await self._offload(self._jit.sync, subject, directory, cached)
        except BaseException:
            if pending is not None:
                pending.addErrback(lambda _: None)  # this bind fails; its check is moot
            # The others did not get a result: each tries alone, as if it had led.
            self._release(key, lambda waited: self._retry(waited, subject, directory, cached))
            raise
        self._release(key, lambda waited: waited.callback(result))
        return cast(JitResult, result)

    def _release(
        self, key: tuple[str, ...], settle: "Callable[[defer.Deferred[JitResult]], None]"
    ) -> None:
        flight = self._flights.pop(key)
        for waited in flight.waiting:
            settle(waited)

    def _retry(
        self,
        waited: "defer.Deferred[JitResult]",
        subject: Subject,
        directory: UserDirectory,
        cached: CachedUser | None,
    ) -> None:
        self._offload(self._jit.sync, subject, directory, cached).chainDeferred(waited)

    async def _verify(self, directory: UserDirectory, dn: str, password: str) -> BindResult | None:
        """The directory's verdict on the password; None when no server answered."""
        try:
            return await directory.verify(dn, password)
        except UpstreamError as exc:
            log.warning("bind check upstream failed: %s", exc)
            return None

    async def _unknown(
        self, subject: Subject, directory: UserDirectory, password: str, jit: JitResult
    ) -> AuthOutcome:
        """The name is in no record and the directory did not return it (or was not asked)."""
        source = subject.source
        assert isinstance(source, LdapSource | AdSource)
        self._report_jit(source.id, jit.freshness.value)
        # A bind to a DN no entry can have: the same round trip a wrong password costs.
        decoy = f"cn=idgate-no-such-user,{source.roots[0]}"
        answered = await self._verify(directory, decoy, password) is not None
        if not answered or jit.freshness is Freshness.FAILED:
            return AuthOutcome(AuthReason.DIRECTORY_UNAVAILABLE, source_id=source.id)
        return _REFUSED

    def _decide(
        self, subject: Subject, bind: BindResult | None, user: CachedUser | None, jit: JitResult
    ) -> AuthOutcome:
        source_id = subject.source.id
        self._report_jit(source_id, jit.freshness.value)
        if bind is None:
            return AuthOutcome(AuthReason.DIRECTORY_UNAVAILABLE, source_id=source_id)
        user_id = user.id if user else None
        dn = user.dn if user else (jit.entry.dn if jit.entry else None)
        if bind in _VERIFIED_BUT:
            return AuthOutcome(_VERIFIED_BUT[bind], True, user_id, source_id, dn)
        if bind is not BindResult.OK:
            reason = _ACCOUNT_REFUSALS[bind]
            # AD answers 533 (disabled) and 701 (expired) only after checking the password
            # (MS-ADTS §3.1.1.3.4.1; 52e and 775 come whatever the password). Say why only
            # where the record, as this sync left it, says the same thing.
            verified = bind in _SAID_ONLY_TO_THE_PASSWORD and _record_reason(user, jit) is reason
            return AuthOutcome(reason, verified, user_id, source_id, dn)
        if user is None:
            # The directory took the password, but the user has no record: the read found the
            # user disabled or expired (not added), or could not be made at all.
            not_added = _record_reason(None, jit) or AuthReason.DIRECTORY_UNAVAILABLE
            return AuthOutcome(not_added, True, None, source_id, dn)
        return self._record_verdict(user, source_id)

    @staticmethod
    def _record_verdict(user: CachedUser, source_id: str) -> AuthOutcome:
        """What the record says of a user whose password verified."""
        reason = _record_reason(user, None)
        verified = reason or AuthReason.SUCCESS
        return AuthOutcome(verified, True, user.id, source_id, user.dn)

    # -- users with a password in the store (scim, local) --------------------------------------

    def _stored_password_bind(
        self, subject: Subject, password: str, cached: CachedUser | None
    ) -> AuthOutcome:
        stored = cached.password_hash if cached else None
        if cached is None or stored is None:
            verify_secret(self._decoy_hash, password)
            return _REFUSED
        if not verify_secret(stored, password):
            return AuthOutcome(AuthReason.INVALID_CREDENTIALS, source_id=subject.source.id)
        dn = member_dn(cached.user_name, subject.source.id, self._config.ldap.suffix)
        verdict = self._record_verdict(cached, subject.source.id)
        return AuthOutcome(verdict.reason, True, cached.id, subject.source.id, dn)
