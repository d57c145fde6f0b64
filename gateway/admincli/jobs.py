"""`idgate sync | refresh | cleanup`: start, follow, inspect and stop the gateway's jobs."""

import sys

import click
from rich.table import Table
from rich.text import Text

from gateway.admincli.client import JsonObject
from gateway.admincli.follow import (
    Follower,
    StopWaiting,
    abandoned,
    follow_job,
    start_and_follow,
)
from gateway.admincli.formatting import plain, title
from gateway.admincli.options import EPILOG, api_command
from gateway.admincli.render import (
    details_tables,
    job_card,
    job_exit_code,
    jobs_table,
    resync_card,
)
from gateway.admincli.session import Session, local_error
from store.job_columns import CATEGORIES, LIVE_STATES

#: Held users asked for per request by `idgate sync holds`.
HOLDS_PAGE = 1000


@click.group(epilog=EPILOG)
def sync() -> None:
    """Bulk synchronization jobs of the running gateway (SPEC §5.3, §5.6)."""


@sync.command("run")
@click.argument("source")
@click.option("--no-wait", is_flag=True, help="Start the job and return at once.")
@api_command
def sync_run(session: Session, source: str, no_wait: bool) -> None:
    """Start a bulk sync of SOURCE and follow it: live counts, then the final table.

    Exit 0 when it succeeded, 1 when it failed, was stopped or interrupted. Ctrl-C asks the
    gateway to stop it (what it wrote stays) and waits for it to end.
    """
    start_and_follow(session, "bulk", source, wait=not no_wait)


@sync.command("status")
@click.argument("source", required=False)
@click.option("--job", "job_id", type=int, default=None, help="A job by id (any kind).")
@click.option(
    "--details",
    "category",
    type=click.Choice([*CATEGORIES, "all"]),
    default=None,
    help="Also list the users of one category (at most 400 each), or of all.",
)
@api_command
def sync_status(
    session: Session, source: str | None, job_id: int | None, category: str | None
) -> None:
    """The latest bulk sync of SOURCE, or the job --job ID."""
    if (source is None) == (job_id is None):
        raise click.UsageError("give a SOURCE or --job ID")
    if job_id is None:
        latest = session.client.jobs(source=source, kind="bulk", limit=1).get("jobs") or []
        if not latest:
            raise local_error("not_found", f"no bulk sync of {source} has run yet")
        job: JsonObject = latest[0]
        job_id = int(job["id"])
        if category is not None:
            job = session.client.job(job_id, details=True, category=_category(category))
    else:
        job = session.client.job(job_id, details=category is not None, category=_category(category))

    def render() -> None:
        session.console.print(job_card(job))
        if category is not None:
            for table in details_tables(job):
                session.console.print(table)

    session.emit(job, render)


def _category(choice: str | None) -> str | None:
    return None if choice in (None, "all") else choice


@sync.command("history")
@click.option("--source", default=None, help="Only this source's jobs.")
@click.option(
    "--kind",
    type=click.Choice(["bulk", "refresh", "cleanup"]),
    default=None,
    help="Only jobs of this kind (default: every kind).",
)
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@api_command
def sync_history(session: Session, source: str | None, kind: str | None, limit: int) -> None:
    """The latest jobs, newest first."""
    answer = session.client.jobs(source=source, kind=kind, limit=limit)
    jobs = answer.get("jobs") or []
    session.emit(
        answer,
        lambda: session.console.print(
            jobs_table(jobs) if jobs else Text("no job has run yet", style="dim")
        ),
    )


@sync.command("stop")
@click.argument("source", required=False)
@click.option("--job", "job_id", type=int, default=None, help="A job by id (any kind).")
@api_command
def sync_stop(session: Session, source: str | None, job_id: int | None) -> None:
    """Ask the running job of SOURCE (or --job ID) to stop; what it wrote stays."""
    if (source is None) == (job_id is None):
        raise click.UsageError("give a SOURCE or --job ID")
    if job_id is None:
        recent = session.client.jobs(source=source, limit=20).get("jobs") or []
        live = [job for job in recent if job.get("state") in LIVE_STATES]
        if not live:
            raise local_error("not_running", f"no job of {source} is running")
        job_id = int(live[0]["id"])
    job = session.client.stop_job(job_id)
    session.emit(
        job,
        lambda: session.console.print(
            Text(f"{title(job)}: {job.get('state')}; what it wrote stays", style="yellow")
        ),
    )


@sync.command("holds")
@click.argument("job_id", type=int)
@api_command
def sync_holds(session: Session, job_id: int) -> None:
    """Every user the held job JOB_ID would disable, and what the source reported."""
    rows: list[JsonObject] = []
    after = 0
    while True:
        page = session.client.job_holds(job_id, after=after, limit=HOLDS_PAGE).get("holds") or []
        rows += page
        if len(page) < HOLDS_PAGE:
            break
        after = int(page[-1]["id"])
    answer: JsonObject = {"job": job_id, "holds": rows}

    def render() -> None:
        table = Table(title=f"job {job_id}: {len(rows)} users held")
        for heading in ("user name", "external id", "the source reports"):
            table.add_column(heading, overflow="fold")
        for row in rows:
            table.add_row(
                plain(row.get("user_name")),
                plain(row.get("external_id")),
                plain(row.get("source_status")),
            )
        session.console.print(table)

    session.emit(answer, render)


@sync.command("confirm")
@click.argument("job_id", type=int)
@click.option("--no-wait", is_flag=True, help="Return once the gateway has started.")
@api_command
def sync_confirm(session: Session, job_id: int, no_wait: bool) -> None:
    """Disable exactly the users the held job JOB_ID holds (the mass-disable guard).

    Users a sign-in synced since the job read them are left as that newer read made them.
    Exit 0 when every held user was dealt with.
    """
    job = session.client.confirm_job(job_id)
    if not no_wait:
        job = follow_job(session, job)
    session.emit(job, lambda: session.console.print(job_card(job)))
    sys.exit(job_exit_code(job) if not no_wait else 0)


@sync.command("discard")
@click.argument("job_id", type=int)
@api_command
def sync_discard(session: Session, job_id: int) -> None:
    """Drop the held job JOB_ID's list: nobody in it is disabled."""
    job = session.client.discard_job(job_id)
    session.emit(job, lambda: session.console.print(job_card(job)))


@sync.command("resync")
@click.option("--wait", is_flag=True, help="Follow every job to its end.")
@api_command
def sync_resync(session: Session, wait: bool) -> None:
    """A bulk sync of every directory source at once (SPEC §5.6).

    Exit 0 when every source got a job (and, with --wait, every job succeeded).
    """
    batch = session.client.resync_all()
    if wait:
        if not session.as_json:
            session.console.print(Text(f"resync batch {batch.get('batch')} started", style="bold"))
        batch_id = str(batch["batch"])
        try:
            batch = Follower(session).follow(
                batch, lambda: session.client.resync(batch_id), lambda doc: doc.get("jobs") or []
            )
        except StopWaiting as stopped:
            abandoned(*(int(job["id"]) for job in stopped.jobs))
    session.emit(batch, lambda: session.console.print(resync_card(batch)))
    jobs = batch.get("jobs") or []
    failed = batch.get("skipped") or (wait and any(job_exit_code(job) for job in jobs))
    sys.exit(1 if failed else 0)


# -- commands: refresh, cleanup -------------------------------------------------------------


@click.group(epilog=EPILOG)
def refresh() -> None:
    """The daily user refresh (SPEC §5.4)."""


@refresh.command("run")
@click.argument("source")
@click.option("--wait", is_flag=True, help="Follow the job to its end.")
@api_command
def refresh_run(session: Session, source: str, wait: bool) -> None:
    """Run the refresh of SOURCE now: re-read its users who have not authenticated lately."""
    start_and_follow(session, "refresh", source, wait=wait)


@click.group(epilog=EPILOG)
def cleanup() -> None:
    """The daily cleanup (SPEC §5.5)."""


@cleanup.command("run")
@click.option("--wait", is_flag=True, help="Follow the job to its end.")
@api_command
def cleanup_run(session: Session, wait: bool) -> None:
    """Run the cleanup now: disable never-used users, delete those pending long enough."""
    start_and_follow(session, "cleanup", None, wait=wait)
