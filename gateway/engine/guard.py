"""The mass-disable guard (SPEC §5.3), as Entra ID provisioning's accidental-deletions
threshold: a run that would disable too many of a source's active users disables none of
them and waits for a super admin. Pure: counts in, a verdict out.
"""

from dataclasses import dataclass

__all__ = ["DisableLimits", "held_because"]


@dataclass(frozen=True)
class DisableLimits:
    """A source's thresholds; None switches one off."""

    #: At most this many users disabled by one run.
    count: int | None = 500
    #: At most this percentage of the source's active users disabled by one run.
    percent: float | None = 20.0


def held_because(would_disable: int, active: int, limits: DisableLimits) -> str | None:
    """Why a run that would disable `would_disable` of `active` users must wait, or None.

    Args:
        would_disable: active users the run would disable (source-reported and missing).
        active: the source's active users before the run disables any.
    """
    if would_disable <= 0:
        return None
    reasons = []
    if limits.count is not None and would_disable > limits.count:
        reasons.append(f"more than max_disable_count ({limits.count})")
    if limits.percent is not None and would_disable * 100 > limits.percent * max(active, 1):
        share = 100 * would_disable / max(active, 1)
        reasons.append(
            f"{share:.1f} % of {active} active users, more than max_disable_percent"
            f" ({limits.percent:g} %)"
        )
    if not reasons:
        return None
    return f"the run would disable {would_disable} users: " + " and ".join(reasons)
