"""The mass-disable guard's verdict (SPEC §5.3), row by row."""

import pytest

from gateway.engine.guard import DisableLimits, held_because

DEFAULT = DisableLimits()


@pytest.mark.parametrize(
    ("would_disable", "active", "limits", "held"),
    [
        (0, 0, DEFAULT, False),
        (0, 10, DisableLimits(count=0, percent=0), False),  # nothing to disable: never held
        (500, 100_000, DEFAULT, False),  # exactly the count: allowed
        (501, 100_000, DEFAULT, True),  # one more: held
        (200, 1000, DEFAULT, False),  # exactly 20 %
        (201, 1000, DEFAULT, True),  # 20.1 %
        (3, 10, DEFAULT, True),  # 30 % of a small source
        (3, 10, DisableLimits(count=500, percent=None), False),  # percent switched off
        (600, 100_000, DisableLimits(count=None, percent=20.0), False),  # count switched off
        (10**6, 10**6, DisableLimits(count=None, percent=None), False),  # guard off
        (1, 10, DisableLimits(count=0, percent=None), True),  # count 0: hold every disable
        (4503, 5003, DEFAULT, True),  # the 90 % filter edit
    ],
)
def test_held_when_a_threshold_is_passed(
    would_disable: int, active: int, limits: DisableLimits, held: bool
) -> None:
    assert (held_because(would_disable, active, limits) is not None) is held


def test_the_reason_names_each_threshold_passed() -> None:
    reason = held_because(4503, 5003, DEFAULT)
    assert reason is not None
    assert "4503" in reason
    assert "max_disable_count (500)" in reason
    assert "90.0 % of 5003 active users" in reason
    assert "max_disable_percent (20 %)" in reason


def test_only_the_percentage() -> None:
    reason = held_because(3, 10, DEFAULT)
    assert reason is not None
    assert "max_disable_count" not in reason
    assert "30.0 % of 10 active users" in reason
