"""Rich renderings of the API's documents: job cards and tables, resync batches, users."""

from collections.abc import Sequence

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from gateway.admincli.client import JsonObject
from gateway.admincli.formatting import (
    LABELS,
    SHORT_LABELS,
    counts_of,
    duration,
    plain,
    shown_counters,
    state_text,
    title,
    took,
    what,
    when,
)
from store.job_columns import COUNTERS, LIVE_STATES

# -- jobs -----------------------------------------------------------------------------------


def job_card(job: JsonObject) -> RenderableType:
    """A finished (or current) job: what, state, times, error, and the counts table."""
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    facts.add_row("state", state_text(job.get("state")))
    facts.add_row("requested by", plain(job.get("requested_by")))
    facts.add_row("started", plain(when(job.get("started_at"))))
    if job.get("ended_at"):
        facts.add_row("ended", plain(when(job.get("ended_at"))))
        seconds = took(job)
        if seconds is not None:
            facts.add_row("took", plain(duration(seconds)))
    if job.get("batch"):
        facts.add_row("resync batch", plain(job.get("batch")))
    if job.get("error"):
        facts.add_row("error", Text(str(job["error"]), style="red"))
    if job.get("held_reason"):
        facts.add_row("held", Text(str(job["held_reason"]), style="magenta"))
    counts = Table(title=None, show_edge=True, pad_edge=True)
    counts.add_column("users")
    counts.add_column("count", justify="right")
    values = counts_of(job)
    for name in COUNTERS:
        counts.add_row(LABELS[name], str(values[name]))
    return Group(Text(title(job), style="bold"), facts, counts, _ending(job))


def _ending(job: JsonObject) -> Text:
    state = job.get("state")
    if state == "stopped":
        return Text("stopped on request: what it wrote before stopping stays.", style="yellow")
    if state == "interrupted":
        return Text(
            "interrupted: the gateway process running it ended; what it wrote stays.", style="red"
        )
    if state in LIVE_STATES:
        return Text(f"still {state}: idgate sync status --job {job.get('id')}", style="dim")
    if state == "held":
        job_id = job.get("id")
        return Text(
            "held by the mass-disable guard: nobody was disabled. Review the list"
            f" (idgate sync holds {job_id}), then idgate sync confirm {job_id} to disable"
            f" exactly those users, or idgate sync discard {job_id}.",
            style="magenta",
        )
    if state == "discarded":
        return Text("discarded: the users it held were not disabled.", style="yellow")
    return Text("")


def jobs_table(jobs: Sequence[JsonObject]) -> Table:
    """One row per job, compact: no borders, short headings; the kind and the source only
    when they differ between rows."""
    names = shown_counters(jobs)
    kinds = len({job.get("kind") for job in jobs}) > 1
    sources = len({job.get("source") for job in jobs}) > 1
    heading = what(jobs[0]) if jobs and not (kinds or sources) else None
    table = Table(
        title=heading, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True
    )
    table.add_column("job", justify="right", no_wrap=True)
    if kinds:
        table.add_column("kind")
    if sources:
        table.add_column("source")
    table.add_column("state", no_wrap=True, min_width=11)
    table.add_column("started (UTC)")
    table.add_column("took", justify="right")
    for name in names:
        # A number is folded, never cut: `12…` for 123456 would read as a wrong count.
        table.add_column(SHORT_LABELS[name], justify="right", overflow="fold")
    for job in jobs:
        seconds = took(job)
        counts = counts_of(job)
        cells: list[RenderableType] = [str(job.get("id"))]
        if kinds:
            cells.append(plain(job.get("kind")))
        if sources:
            cells.append(plain(job.get("source")))
        cells += [
            state_text(job.get("state")),
            when(job.get("started_at"), zone=False)[:16],
            duration(seconds) if seconds is not None and job.get("ended_at") else "-",
            *(str(counts[name]) for name in names),
        ]
        table.add_row(*cells)
    return table


def details_tables(job: JsonObject) -> list[RenderableType]:
    """A table per category that lists users; one line naming the empty ones."""
    details = job.get("details") or {}
    out: list[RenderableType] = []
    empty = [LABELS.get(category, category) for category, rows in details.items() if not rows]
    for category, rows in details.items():
        if not rows:
            continue
        table = Table(title=f"{LABELS.get(category, category)} ({len(rows)} listed)")
        table.add_column("user name")
        table.add_column("external id")
        table.add_column("reason")
        for row in rows:
            table.add_row(
                plain(row.get("user_name")), plain(row.get("external_id")), plain(row.get("reason"))
            )
        out.append(table)
    if empty:
        out.append(Text(f"no users listed as: {', '.join(empty)}", style="dim"))
    return out


def resync_card(batch: JsonObject) -> RenderableType:
    done = "done" if batch.get("done") else "running"
    parts: list[RenderableType] = [
        Text(f"resync batch {batch.get('batch')}: {done}", style="bold"),
    ]
    jobs = batch.get("jobs") or []
    parts.append(jobs_table(jobs) if jobs else Text("no job started", style="yellow"))
    for skipped in batch.get("skipped") or []:
        parts.append(
            Text(f"skipped {skipped.get('source')}: {skipped.get('reason')}", style="yellow")
        )
    return Group(*parts)


def job_exit_code(job: JsonObject) -> int:
    return 0 if job.get("state") == "succeeded" else 1


# -- users ----------------------------------------------------------------------------------

USER_FIELDS = (
    ("id", "id"),
    ("source", "source"),
    ("user name", "user_name"),
    ("external id", "external_id"),
    ("DN", "dn"),
    ("display name", "display_name"),
    ("given name", "given_name"),
    ("family name", "family_name"),
    ("emails", "emails"),
    ("groups", "groups"),
    ("policy", "policy"),
)
USER_TIMES = (
    ("created", "created_at"),
    ("updated", "updated_at"),
    ("last sync", "last_sync_at"),
    ("last authentication", "last_auth_at"),
)


def status_words(user: JsonObject) -> str:
    status = str(user.get("status"))
    if status == "disabled":
        by, reason = user.get("disabled_by"), user.get("reason")
        status += f" by {by}" if by else ""
        status += f" ({reason})" if reason else ""
    if user.get("pending_deletion_since"):
        status += f", pending deletion since {when(user['pending_deletion_since'])}"
    return status


def user_line(user: JsonObject) -> Text:
    return Text(f"{user.get('user_name')} ({user.get('source')}): {status_words(user)}")


def user_card(user: JsonObject) -> Table:
    table = Table(show_header=False, title=f"{user.get('user_name')} ({user.get('source')})")
    table.add_column(style="bold")
    table.add_column()
    for label, key in USER_FIELDS:
        table.add_row(label, plain(user.get(key)))
    table.add_row("status", state_text(status_words(user)))
    table.add_row("source status", plain(user.get("source_status")))
    for label, key in USER_TIMES:
        table.add_row(label, plain(when(user.get(key)) if user.get(key) else None))
    phones = user.get("phones") or {}
    for kind in ("sms", "voice"):
        numbers = [
            f"{p.get('number')}{' (manual)' if p.get('manual') else ''}"
            for p in phones.get(kind) or []
        ]
        table.add_row(f"{kind} phones", plain(numbers))
    table.add_row("notes", plain(user.get("notes")))
    table.add_row("version", plain(user.get("version")))
    return table
