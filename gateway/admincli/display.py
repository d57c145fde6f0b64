"""A running job on screen: a live panel per job on a terminal, else a line per change
(at most every few seconds), and nothing with --json."""

from collections.abc import Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import click
from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from gateway.admincli.client import JsonObject
from gateway.admincli.formatting import (
    LABELS,
    STATE_STYLES,
    clock_time,
    counts_line,
    counts_of,
    shown_counters,
    state_text,
    title,
    took,
)
from store.job_columns import LIVE_STATES


class Display:
    """Shows jobs as they move: nothing here (--json)."""

    def __enter__(self) -> "Display":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def update(self, jobs: Sequence[JsonObject]) -> None:
        return None

    def note(self, text: str) -> None:
        click.echo(text, err=True)


class LiveDisplay(Display):
    """A panel per job, redrawn in place: spinner, state, elapsed time, counts."""

    def __init__(self, console: Console, now: Callable[[], datetime]) -> None:
        from rich.live import Live

        self._now = now
        self._jobs: list[JsonObject] = []
        self._spinners: dict[Any, Spinner] = {}
        self._live = Live(
            console=console,
            get_renderable=self._render,
            refresh_per_second=8,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def __enter__(self) -> "LiveDisplay":
        self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._live.stop()

    def update(self, jobs: Sequence[JsonObject]) -> None:
        self._jobs = list(jobs)
        self._live.refresh()

    def note(self, text: str) -> None:
        self._live.console.print(Text(text, style="yellow"))

    def _render(self) -> RenderableType:
        if not self._jobs:
            return Text("")
        return Group(*(self._panel(job) for job in self._jobs))

    def _panel(self, job: JsonObject) -> Panel:
        live = job.get("state") in LIVE_STATES
        seconds = took(job, self._now())
        head = Table.grid(padding=(0, 2))
        head.add_row(
            self._spinners.setdefault(job.get("id"), Spinner("dots"))
            if live
            else Text("■", style=STATE_STYLES.get(str(job.get("state")), "")),
            state_text(job.get("state")),
            Text(clock_time(seconds) if seconds is not None else "", style="dim"),
        )
        counts = Table(box=None, pad_edge=False, show_edge=False, header_style="dim")
        values = counts_of(job)
        names = shown_counters([job])
        for name in names:
            counts.add_column(LABELS[name], justify="right")
        counts.add_row(*(str(values[name]) for name in names))
        return Panel(
            Group(head, counts), title=escape(title(job)), title_align="left", expand=False
        )


class LineDisplay(Display):
    """No terminal: a line when a job's state changes, or its counts at most every
    `every` seconds."""

    def __init__(
        self,
        console: Console,
        clock: Callable[[], float],
        now: Callable[[], datetime],
        every: float,
    ) -> None:
        self._console = console
        self._clock = clock
        self._now = now
        self._every = every
        self._shown: dict[Any, tuple[str, dict[str, int], float]] = {}

    def update(self, jobs: Sequence[JsonObject]) -> None:
        at = self._clock()
        for job in jobs:
            state, counts = str(job.get("state")), counts_of(job)
            last = self._shown.get(job.get("id"))
            if last is not None:
                last_state, last_counts, last_at = last
                if state == last_state and (counts == last_counts or at - last_at < self._every):
                    continue
            self._shown[job.get("id")] = (state, counts, at)
            seconds = took(job, self._now())
            elapsed = f" [{clock_time(seconds)}]" if seconds is not None else ""
            line = f"{title(job)}: {state}: {counts_line(job)}{elapsed}"
            self._console.print(Text(line), soft_wrap=True)  # a log line: never wrapped

    def note(self, text: str) -> None:
        self._console.print(Text(text), soft_wrap=True)
