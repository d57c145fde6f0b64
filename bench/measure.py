"""Concurrent callers, timed: for a fixed duration (`run_for`) or once per item (`run_each`).

Each caller is a thread with its own `Attempt` (made in that thread, so a connection it holds
is used by one thread only). An attempt returns None on success or the reason it failed; an
exception counts as a failure too, named by its type and message, and the caller goes on.
Only the timed loop is measured: threads make their attempt, then wait at a barrier, and the
clock starts when the last one is ready.
"""

import contextlib
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from typing import Any, TypeVar

T = TypeVar("T")

#: One call: None on success, else why it failed.
Attempt = Callable[[T], str | None]
#: Makes one caller's Attempt, and releases what it holds when the caller is done.
AttemptFactory = Callable[[], AbstractContextManager[Attempt[T]]]


@dataclass
class Measurement:
    seconds: float = 0.0
    successes: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    #: Seconds per call, successful or not.
    latencies: list[float] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return self.successes + sum(self.failures.values())

    @property
    def rate(self) -> float:
        """Successful calls per second."""
        return self.successes / self.seconds if self.seconds else 0.0

    def percentile_ms(self, percent: float) -> float:
        """Nearest-rank percentile of the latencies, in milliseconds."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        rank = max(1, round(percent / 100 * len(ordered)))
        return ordered[rank - 1] * 1000

    def merge(self, other: "Measurement") -> None:
        self.successes += other.successes
        self.failures.update(other.failures)
        self.latencies.extend(other.latencies)


@dataclass
class _Clock:
    seconds: float | None
    start: float = 0.0
    deadline: float = float("inf")

    def go(self) -> None:
        self.start = time.perf_counter()
        if self.seconds is not None:
            self.deadline = self.start + self.seconds


def run_for(
    seconds: float,
    concurrency: int,
    items: Sequence[T],
    factory: AttemptFactory[T],
    *,
    seed: int = 0,
) -> Measurement:
    """`concurrency` callers, each calling its attempt on random items until `seconds` pass."""

    def picks(index: int) -> Iterator[T]:
        rng = random.Random(seed * 1000 + index)  # noqa: S311 - sampling, not security
        while True:
            yield rng.choice(items)

    return _run(concurrency, factory, picks, seconds)


def run_each(concurrency: int, items: Sequence[T], factory: AttemptFactory[T]) -> Measurement:
    """`concurrency` callers sharing `items`: every item is attempted exactly once."""
    shared = iter(items)
    lock = threading.Lock()

    def picks(_index: int) -> Iterator[T]:
        while True:
            with lock:
                item = next(shared, None)
            if item is None:
                return
            yield item

    return _run(concurrency, factory, picks, None)


def _run(
    concurrency: int,
    factory: AttemptFactory[T],
    picks: Callable[[int], Iterator[T]],
    seconds: float | None,
) -> Measurement:
    clock = _Clock(seconds)
    barrier = threading.Barrier(concurrency, action=clock.go)
    results = [Measurement() for _ in range(concurrency)]
    ends = [0.0] * concurrency
    errors: list[BaseException] = []

    def caller(index: int) -> None:
        result = results[index]
        try:
            with factory() as attempt:
                barrier.wait()
                for item in picks(index):
                    began = time.perf_counter()
                    if began >= clock.deadline:
                        break
                    try:
                        reason = attempt(item)
                    except Exception as exc:
                        reason = f"{type(exc).__name__}: {exc}"
                    result.latencies.append(time.perf_counter() - began)
                    if reason is None:
                        result.successes += 1
                    else:
                        result.failures[reason] += 1
                ends[index] = time.perf_counter()
        except BaseException as exc:
            # A caller that could not even start (its connection failed): stop the others.
            errors.append(exc)
            barrier.abort()

    threads = [
        threading.Thread(target=caller, args=(index,), name=f"bench-caller-{index}")
        for index in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        first = next((e for e in errors if not isinstance(e, threading.BrokenBarrierError)), None)
        raise RuntimeError(f"a benchmark caller failed: {first or errors[0]!r}") from first

    total = Measurement(seconds=max(ends) - clock.start)
    for result in results:
        total.merge(result)
    return total


@contextlib.contextmanager
def stateless(attempt: Attempt[T]) -> Iterator[Attempt[T]]:
    """A factory's body for an attempt that holds nothing per caller."""
    yield attempt


def stop_clients(processes: Sequence[BaseProcess], results: "Queue[Any]") -> None:
    """Join client processes, killing one still alive after 5 s, and close their queue."""
    for process in processes:
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join()
        process.close()
    results.close()
