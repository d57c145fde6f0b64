"""Following jobs to their end: polling, riding out a lost gateway, and Ctrl-C (the first
asks the gateway to stop the jobs and goes on waiting; the second stops waiting)."""

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

import click
from rich.text import Text

from gateway.admincli.client import AdminError, JsonObject
from gateway.admincli.display import Display, LineDisplay, LiveDisplay
from gateway.admincli.formatting import title
from gateway.admincli.render import job_card, job_exit_code
from gateway.admincli.session import Session
from store.job_columns import LIVE_STATES


class StopWaiting(Exception):
    """A second Ctrl-C: the job goes on stopping in the gateway; we stop watching it."""

    def __init__(self, jobs: Sequence[JsonObject]) -> None:
        super().__init__("no longer waiting")
        self.jobs = list(jobs)


@dataclass
class Follower:
    """Polls jobs until none is running; Ctrl-C asks the gateway to stop them."""

    session: Session
    stop_asked: bool = field(default=False, init=False)

    def display(self) -> Display:
        world, console = self.session.world, self.session.console
        if self.session.as_json:
            return Display()
        interactive = console.is_interactive if world.interactive is None else world.interactive
        if interactive:
            return LiveDisplay(console, world.now)
        return LineDisplay(console, world.clock, world.now, world.line_seconds)

    def follow(
        self,
        document: JsonObject,
        fetch: Callable[[], JsonObject],
        jobs_of: Callable[[JsonObject], Sequence[JsonObject]],
    ) -> JsonObject:
        """Poll `fetch` every `poll_seconds` until every job of the document has ended.

        Returns: the last document. Raises: StopWaiting (a second Ctrl-C); AdminError when
        the gateway answers with an error, or stays unreachable past `patience_seconds`.
        """
        world = self.session.world
        lost_since: float | None = None
        with self.display() as display:
            while True:
                jobs = jobs_of(document)
                display.update(jobs)
                running = [job for job in jobs if job.get("state") in LIVE_STATES]
                if not running:
                    return document
                try:
                    world.sleep(world.poll_seconds)
                    document = fetch()
                    lost_since = None
                except KeyboardInterrupt:
                    if self.stop_asked:
                        raise StopWaiting(running) from None
                    self.stop_asked = True
                    self._stop(running, display)
                except AdminError as error:
                    if error.code not in ("unreachable", "timeout"):
                        raise
                    at = world.clock()
                    if lost_since is None:
                        lost_since = at
                        display.note(f"{error.detail}; retrying")
                    elif at - lost_since > world.patience_seconds:
                        ids = ", ".join(str(job.get("id")) for job in running)
                        raise AdminError(
                            error.status,
                            error.code,
                            f"{error.detail}; gave up after {world.patience_seconds:g} s"
                            f" (job {ids} may still be running)",
                        ) from error

    def _stop(self, running: Sequence[JsonObject], display: Display) -> None:
        names = ", ".join(str(job.get("id")) for job in running)
        display.note(
            f"Ctrl-C: asking the gateway to stop job {names}; what it wrote stays."
            " Waiting for it to end (Ctrl-C again: stop waiting)."
        )
        for job in running:
            try:
                self.session.client.stop_job(int(job["id"]))
            except AdminError as error:
                if error.code != "conflict":  # it ended meanwhile: the next poll shows how
                    raise


def follow_job(session: Session, job: JsonObject) -> JsonObject:
    """Follow one job to its end; Ctrl-C twice exits 1 while it still stops."""
    follower = Follower(session)
    job_id = int(job["id"])
    try:
        return follower.follow(job, lambda: session.client.job(job_id), lambda doc: [doc])
    except StopWaiting:
        abandoned(job_id)


def abandoned(*job_ids: int) -> NoReturn:
    ids = ", ".join(map(str, job_ids))
    click.echo(
        f"idgate: no longer waiting; the gateway goes on stopping job {ids}"
        f" (see: idgate sync status --job {job_ids[0]})",
        err=True,
    )
    sys.exit(1)


def finish_job(session: Session, job: JsonObject) -> NoReturn:
    """Print a finished job and exit with its outcome."""
    session.emit(job, lambda: session.console.print(job_card(job)))
    sys.exit(job_exit_code(job))


def start_and_follow(session: Session, kind: str, source: str | None, *, wait: bool) -> None:
    job = session.client.start_job(kind, source)
    if not wait:
        session.emit(job, lambda: _started(session, job))
        return
    if not session.as_json:
        session.console.print(Text(f"started {title(job)}", style="bold"))
    finish_job(session, follow_job(session, job))


def _started(session: Session, job: JsonObject) -> None:
    session.console.print(Text(f"started {title(job)} ({job.get('state')})", style="bold"))
    session.console.print(Text(f"follow it: idgate sync status --job {job.get('id')}"))
