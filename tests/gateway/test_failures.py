"""The per-name failure limiter (SPEC §6: refused before the directory)."""

from gateway.failures import FailureLimiter


class Tick:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_blocks_after_the_limit_within_the_window_and_case_insensitively():
    tick = Tick()
    limiter = FailureLimiter(3, 60, monotonic=tick)
    for _ in range(3):
        assert not limiter.blocked("Alice")
        limiter.failed("alice")
    assert limiter.blocked("ALICE")
    assert not limiter.blocked("bob")


def test_failures_age_out_one_by_one():
    tick = Tick()
    limiter = FailureLimiter(2, 60, monotonic=tick)
    limiter.failed("alice")
    tick.t += 30
    limiter.failed("alice")
    assert limiter.blocked("alice")
    tick.t += 31  # the first failure is older than the window now
    assert not limiter.blocked("alice")


def test_success_clears_and_memory_stays_bounded():
    limiter = FailureLimiter(1, 60, max_names=10)
    limiter.failed("alice")
    limiter.succeeded("alice")
    assert not limiter.blocked("alice")
    for i in range(1000):
        limiter.failed(f"user{i}")
    assert len(limiter._failures) == 10
