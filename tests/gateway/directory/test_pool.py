"""The connection pool: capacity, reuse, discard, staleness, close."""

import threading
import time

import pytest

from gateway.directory.pool import Pool
from gateway.errors import UpstreamTimeout, UpstreamUnavailable


class Factory:
    def __init__(self) -> None:
        self.opened: list[int] = []
        self.closed: list[int] = []
        self.stale: set[int] = set()

    def open(self) -> int:
        self.opened.append(len(self.opened))
        return self.opened[-1]

    def close(self, item: int) -> None:
        self.closed.append(item)

    def is_stale(self, item: int, idle_seconds: float) -> bool:
        assert idle_seconds >= 0
        return item in self.stale

    def pool(self, size: int = 2, wait: float = 0.2) -> Pool[int]:
        return Pool("test", size, self.open, self.close, self.is_stale, wait)


def test_a_returned_connection_is_reused() -> None:
    factory = Factory()
    pool = factory.pool()

    with pool.lease() as first:
        assert (first.item, first.reused) == (0, False)
    with pool.lease() as second:
        assert (second.item, second.reused) == (0, True)
    assert factory.opened == [0]


def test_an_exception_closes_the_connection() -> None:
    factory = Factory()
    pool = factory.pool()

    with pytest.raises(RuntimeError), pool.lease():
        raise RuntimeError("boom")
    with pool.lease() as lease:
        assert lease.item == 1
    assert factory.closed == [0]


def test_discard_closes_the_connection() -> None:
    factory = Factory()
    pool = factory.pool()

    with pool.lease() as lease:
        lease.discard()
    assert factory.closed == [0]


def test_a_stale_connection_is_replaced() -> None:
    factory = Factory()
    pool = factory.pool()
    with pool.lease():
        pass
    factory.stale.add(0)

    with pool.lease() as lease:
        assert (lease.item, lease.reused) == (1, False)
    assert factory.closed == [0]


def test_callers_wait_for_a_free_connection_then_time_out() -> None:
    factory = Factory()
    pool = factory.pool(size=1, wait=0.2)
    leased, released = threading.Event(), threading.Event()

    def hold() -> None:
        with pool.lease():
            leased.set()
            released.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    assert leased.wait(30), "the holder got no connection in 30 s"
    began = time.monotonic()
    with pytest.raises(UpstreamTimeout, match="busy"), pool.lease():
        pass
    assert 0.15 < time.monotonic() - began < 1.0
    released.set()
    holder.join()
    with pool.lease() as lease:
        assert lease.item == 0
    assert factory.opened == [0]


def test_never_more_than_size_connections() -> None:
    factory = Factory()
    pool = factory.pool(size=3, wait=30)
    in_use = 0
    peak = 0
    leases = 0
    lock = threading.Lock()
    full = threading.Event()  # three connections were in use at once

    def work() -> None:
        nonlocal in_use, peak, leases
        with pool.lease():
            with lock:
                in_use += 1
                peak = max(peak, in_use)
                if in_use == 3:
                    full.set()
            # The first holders keep theirs until all three are out, however slowly the
            # threads start; then each holds a moment, so the others queue behind them.
            full.wait(30)
            time.sleep(0.01)
            with lock:
                in_use -= 1
                leases += 1

    threads = [threading.Thread(target=work) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert leases == 20, "a caller got no connection"
    assert peak == 3
    assert len(factory.opened) <= 3


def test_close() -> None:
    factory = Factory()
    pool = factory.pool()
    with pool.lease() as leased:
        with pool.lease():
            pass
        pool.close()
        assert factory.closed == [1]
    assert factory.closed == [1, leased.item]
    with pytest.raises(UpstreamUnavailable, match="closed"), pool.lease():
        pass
