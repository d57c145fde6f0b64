"""Times, durations, counts and API values as short text for tables and lines."""

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rich.text import Text

from gateway.admincli.client import JsonObject
from store.job_columns import COUNTERS

LABELS = {name: name.replace("_", " ") for name in COUNTERS}
#: Column headings where width is short.
SHORT_LABELS = {
    **LABELS,
    "updated": "upd.",
    "unchanged": "same",
    "disabled": "dis.",
    "not_synchronized": "not sync.",
    "deleted": "del.",
}
#: What a live job shows (SPEC §5.3); deleted and failed join when they are not zero.
LIVE_COUNTERS = ("read", "added", "updated", "unchanged", "disabled", "not_synchronized")
STATE_STYLES = {
    "running": "cyan",
    "stopping": "yellow",
    "stopped": "yellow",
    "succeeded": "green",
    "failed": "red",
    "interrupted": "red",
    "held": "bold magenta",
    "discarded": "yellow",
}


def when(value: Any, *, zone: bool = True) -> str:
    """An API timestamp for people: `2025-01-31 12:00:05 UTC`; `-` when absent."""
    moment = _parse_time(value)
    if moment is None:
        return "-" if value is None else str(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC" if zone else "%Y-%m-%d %H:%M:%S")


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def clock_time(seconds: float) -> str:
    whole = max(0, int(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def took(job: JsonObject, now: datetime | None = None) -> float | None:
    """Seconds from the job's start to its end (or to `now` while it runs)."""
    started = _parse_time(job.get("started_at"))
    ended = _parse_time(job.get("ended_at")) or now
    if started is None or ended is None:
        return None
    return max(0.0, (ended - started).total_seconds())


def what(job: JsonObject) -> str:
    kind, source = job.get("kind"), job.get("source")
    name = {"bulk": "bulk sync", "refresh": "refresh", "cleanup": "cleanup"}.get(
        str(kind), str(kind)
    )
    return f"{name} of {source}" if source else name


def title(job: JsonObject) -> str:
    return f"job {job.get('id')} · {what(job)}"


def state_text(state: Any) -> Text:
    return Text(str(state), style=STATE_STYLES.get(str(state), ""))


def counts_of(job: JsonObject) -> dict[str, int]:
    counts = job.get("counts") or {}
    return {name: int(counts.get(name) or 0) for name in COUNTERS}


def shown_counters(jobs: Sequence[JsonObject]) -> list[str]:
    """The live counters, plus each other counter where a job has any, or is a cleanup."""
    extra = [
        name
        for name in COUNTERS
        if name not in LIVE_COUNTERS
        and any(counts_of(j)[name] or j.get("kind") == "cleanup" for j in jobs)
    ]
    return [*LIVE_COUNTERS, *extra]


def counts_line(job: JsonObject) -> str:
    counts = counts_of(job)
    return ", ".join(f"{LABELS[name]} {counts[name]}" for name in shown_counters([job]))


def plain(value: Any) -> Text:
    """A value as table text: never read as rich markup (names and reasons are data)."""
    if value is None or value == "" or value == []:
        return Text("-", style="dim")
    if isinstance(value, bool):
        return Text("yes" if value else "no")
    if isinstance(value, list):
        return Text("\n".join(_one(item) for item in value))
    if isinstance(value, dict):
        return Text("\n".join(f"{k}: {_one(v) or '-'}" for k, v in value.items()))
    return Text(str(value))


def _one(item: Any) -> str:
    if isinstance(item, dict):
        if "value" in item:
            kind = f" ({item['type']})" if item.get("type") else ""
            return f"{item['value']}{kind}"
        return json.dumps(item, ensure_ascii=False)
    if isinstance(item, list):
        return ", ".join(_one(i) for i in item)
    return str(item)
