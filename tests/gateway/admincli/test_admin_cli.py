"""The admin CLI (`idgate sync|users|refresh|cleanup`, gateway/admincli.py).

Two halves:
- rendering, exit codes and edge cases through click's CliRunner, the client's HTTP served
  by `FakeApi` (a request -> response function speaking docs/admin-api.md) through httpx's
  transport injection; sleeping and the clocks are the test's, so polling takes no time;
- end to end: a real gateway (`idgate serve`, both fronts) on a fresh slapd, and `idgate ...`
  run as a subprocess the way an operator runs it.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from gateway.admincli import Surroundings
from gateway.admincli.client import AdminClient, AdminError
from gateway.runtime.cli import main
from tests.gateway.admin_gateway import HELP_DESK_TOKEN, SUPER_TOKEN, AdminGateway, idgate_cli
from tests.gateway.realgw import slapd_source
from tests.ldapproxy.gateway_process import refusing_port
from tests.servers.fixtures import SKIP_REASON
from tests.servers.slapd import Slapd, SlapdNotInstalled
from tests.servers.slapd import find_installation as find_slapd

TOKEN = "tok-SECRET-do-not-print-4711"
STARTED = "2025-03-01T10:00:00Z"
COUNTER_NAMES = (
    "read", "added", "updated", "unchanged", "disabled", "not_synchronized", "deleted", "failed",
)  # fmt: skip


def job_doc(job_id: int = 12, state: str = "running", **counts: int) -> dict[str, Any]:
    ended = None if state in ("running", "stopping") else "2025-03-01T10:00:04Z"
    return {
        "id": job_id,
        "kind": "bulk",
        "source": "corp",
        "state": state,
        "requested_by": "ops",
        "started_at": STARTED,
        "ended_at": ended,
        "error": "directory unavailable: ldap://dir:389 refused" if state == "failed" else None,
        "batch": None,
        "counts": {name: counts.get(name, 0) for name in COUNTER_NAMES},
    }


def user_doc(name: str = "alice", **fields: Any) -> dict[str, Any]:
    return {
        "id": f"u-{name}",
        "source": "corp",
        "external_id": "6f1c",
        "user_name": name,
        "dn": f"uid={name},ou=people,dc=example,dc=org",
        "display_name": name.title(),
        "given_name": name.title(),
        "family_name": "Example",
        "emails": [f"{name}@example.org"],
        "groups": ["cn=staff,ou=groups,dc=example,dc=org"],
        "policy": {"title": "[bold]engineer[/bold]"},
        "status": "active",
        "disabled_by": None,
        "reason": None,
        "source_status": "enabled",
        "pending_deletion_since": None,
        "created_at": STARTED,
        "updated_at": STARTED,
        "last_sync_at": STARTED,
        "last_auth_at": None,
        "notes": None,
        "version": 3,
        "phones": {
            "sms": [{"index": 0, "number": "+1 202 555 0101", "manual": False}],
            "voice": [{"index": 0, "number": "+1 202 555 0111", "manual": True}],
        },
        **fields,
    }


def error(status: int, code: str, detail: str, **extra: Any) -> httpx.Response:
    return httpx.Response(status, json={"error": code, "detail": detail, **extra})


Handler = Callable[[httpx.Request], httpx.Response]


class FakeApi:
    """The admin API as the contract describes it, scripted per test.

    `frames` are the successive states GET /admin/jobs/{id} returns (the last one repeats);
    a stop request makes the remaining answers `stopping` then `stopped` with the last
    counts. `routes` maps (METHOD, path) to a handler, over the defaults."""

    def __init__(self, frames: list[dict[str, Any]] | None = None) -> None:
        self.frames = frames or [job_doc(), job_doc(state="succeeded", read=5, added=3)]
        self.requests: list[httpx.Request] = []
        self.routes: dict[tuple[str, str], Handler] = {}
        self.stop_asked = False
        self._polls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return error(401, "unauthorized", "not an admin token")
        handler = self.routes.get((request.method, request.url.path))
        if handler is not None:
            return handler(request)
        path = request.url.path
        if request.method == "POST" and path == "/admin/jobs":
            return httpx.Response(202, json=self.frames[0])
        if request.method == "GET" and re.fullmatch(r"/admin/jobs/\d+", path):
            return httpx.Response(200, json=self._next_frame())
        if request.method == "POST" and re.fullmatch(r"/admin/jobs/\d+/stop", path):
            self.stop_asked = True
            return httpx.Response(200, json={**self.frames[0], "state": "stopping"})
        return error(404, "not_found", f"no route {path}")

    def _next_frame(self) -> dict[str, Any]:
        self._polls += 1
        index = min(self._polls, len(self.frames) - 1)
        if self.stop_asked:
            counts = self.frames[min(self._polls - 1, len(self.frames) - 1)]["counts"]
            state = "stopped" if self._stopped_polls() > 1 else "stopping"
            ended = "2025-03-01T10:00:04Z" if state == "stopped" else None
            return {**self.frames[0], "state": state, "counts": counts, "ended_at": ended}
        return self.frames[index]

    def _stopped_polls(self) -> int:
        self._stop_polls = getattr(self, "_stop_polls", 0) + 1
        return self._stop_polls

    def sent(self, method: str, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method and r.url.path == path]


class Clock:
    """Monotonic seconds that move only when the CLI sleeps."""

    def __init__(self, interrupt_at: tuple[int, ...] = ()) -> None:
        self.now = 0.0
        self.sleeps = 0
        self.interrupt_at = interrupt_at

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += seconds
        if self.sleeps in self.interrupt_at:
            raise KeyboardInterrupt

    def wall(self) -> datetime:
        return datetime(2025, 3, 1, 10, 0, tzinfo=UTC) + timedelta(seconds=self.now)


def invoke(
    api: Handler | None,
    *args: str,
    clock: Clock | None = None,
    env: dict[str, str | None] | None = None,
    interactive: bool = False,
    **world: Any,
) -> Result:
    """Run `idgate ARGS` in-process, the token in the environment unless `env` says."""
    clock = clock or Clock()
    surroundings = Surroundings(
        transport=httpx.MockTransport(api) if api is not None else None,
        sleep=clock.sleep,
        clock=lambda: clock.now,
        now=clock.wall,
        interactive=interactive,
        **world,
    )
    environment: dict[str, str | None] = {
        "IDGATE_ADMIN_TOKEN": TOKEN,
        "IDGATE_URL": None,
        "COLUMNS": "120",
    }
    environment.update(env or {})
    result = CliRunner().invoke(main, list(args), obj=surroundings, env=environment)
    assert TOKEN not in result.output, "the token was printed"
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result


def counts_in(text: str) -> dict[str, int]:
    """The final table's rows: `│ added │ 3 │` -> {"added": 3}."""
    found = {}
    for label in ("read", "added", "updated", "unchanged", "disabled", "not synchronized"):
        match = re.search(rf"[│|] {label}\s+[│|]\s+(\d+) [│|]", text)
        if match:
            found[label.replace(" ", "_")] = int(match[1])
    return found


# -- the token and the URL ------------------------------------------------------------------


def test_without_a_token_it_is_a_usage_error_that_names_both_ways() -> None:
    result = invoke(FakeApi(), "sync", "run", "corp", env={"IDGATE_ADMIN_TOKEN": None})
    assert result.exit_code == 2
    assert "IDGATE_ADMIN_TOKEN" in result.stderr
    assert "--token-file" in result.stderr


def test_there_is_no_token_option() -> None:
    result = invoke(FakeApi(), "sync", "run", "corp", "--token", "x")
    assert result.exit_code == 2
    assert "No such option" in result.stderr
    assert "There is no --token" in invoke(None, "sync", "run", "--help").output


def test_token_file_is_read_and_wins_over_the_environment(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\n")
    api = FakeApi()
    result = invoke(
        api,
        "sync",
        "history",
        "--token-file",
        str(token_file),
        env={"IDGATE_ADMIN_TOKEN": "wrong"},
    )
    assert result.exit_code == 1  # the fake has no /admin/jobs list: 404, but authorized
    assert "unauthorized" not in result.stderr
    assert api.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot read"),
        ("", "is empty"),
        ("  \n", "is empty"),
        ("a b\n", "alone"),
        ("tök\n", "visible ASCII"),
    ],
)
def test_a_bad_token_file_is_a_usage_error_naming_the_file(
    tmp_path: Path, content: str | None, problem: str
) -> None:
    token_file = tmp_path / "admin.token"
    if content is not None:
        token_file.write_text(content)
    api = FakeApi()
    result = invoke(api, "sync", "history", "--token-file", str(token_file))
    assert result.exit_code == 2
    assert str(token_file) in result.stderr
    assert problem in result.stderr
    assert api.requests == []


def test_an_unreachable_gateway_is_named_and_exits_1() -> None:
    with refusing_port() as port:  # nobody listens on it, and nobody can take it meanwhile
        url = f"http://127.0.0.1:{port}"
        result = invoke(None, "sync", "history", "--url", url)
        as_json = invoke(None, "sync", "history", "--json", env={"IDGATE_URL": url})
    assert result.exit_code == 1
    assert f"cannot reach the gateway at {url}" in result.stderr
    assert "unreachable" in result.stderr
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["error"] == "unreachable"


def test_a_url_with_credentials_is_never_echoed() -> None:
    result = invoke(None, "sync", "history", "--url", "http://ops:pw@127.0.0.1:1")
    assert result.exit_code == 1
    assert "pw" not in result.output
    assert "http://127.0.0.1:1" in result.stderr


def test_a_url_that_is_not_http_is_a_usage_error() -> None:
    result = invoke(FakeApi(), "sync", "history", "--url", "ldap://127.0.0.1:389")
    assert result.exit_code == 2
    assert "--url" in result.stderr


def test_a_refused_token_exits_1_with_a_hint() -> None:
    result = invoke(FakeApi(), "sync", "run", "corp", env={"IDGATE_ADMIN_TOKEN": "nope"})
    assert result.exit_code == 1
    assert "not an admin token (unauthorized, HTTP 401)" in result.stderr
    assert "nope" not in result.output


def test_an_answer_that_is_not_the_admin_api_says_so() -> None:
    result = invoke(lambda r: httpx.Response(404, text="<html>nginx</html>"), "sync", "history")
    assert result.exit_code == 1
    assert "HTTP 404" in result.stderr
    assert "admin API" in result.stderr


# -- sync run -------------------------------------------------------------------------------


def test_sync_run_shows_progress_lines_then_the_final_table() -> None:
    frames = [
        job_doc(),
        job_doc(read=100, added=10, unchanged=90),
        job_doc(read=200, added=20, unchanged=180),
        job_doc(state="succeeded", read=250, added=21, updated=4, unchanged=220, disabled=3,
                not_synchronized=2),
    ]  # fmt: skip
    api = FakeApi(frames)
    result = invoke(api, "sync", "run", "corp")
    assert result.exit_code == 0, result.output
    assert json.loads(api.sent("POST", "/admin/jobs")[0].content) == {
        "kind": "bulk",
        "source": "corp",
    }
    assert "started job 12 · bulk sync of corp" in result.stdout
    assert "job 12 · bulk sync of corp: running: read 0" in result.stdout
    assert counts_in(result.stdout) == {
        "read": 250,
        "added": 21,
        "updated": 4,
        "unchanged": 220,
        "disabled": 3,
        "not_synchronized": 2,
    }
    assert "succeeded" in result.stdout
    assert "took" in result.stdout and "4.0 s" in result.stdout


def test_without_a_terminal_counts_are_printed_at_most_every_few_seconds() -> None:
    frames = [job_doc()] + [job_doc(read=n, added=n) for n in range(1, 41)]
    frames.append(job_doc(state="succeeded", read=40, added=40))
    result = invoke(FakeApi(frames), "sync", "run", "corp")  # 41 polls, 0.5 s apart
    assert result.exit_code == 0
    lines = [line for line in result.stdout.splitlines() if ": running: " in line]
    assert 4 <= len(lines) <= 6, lines  # 20 s of polling, a line per 5 s


def test_sync_run_json_prints_the_final_job_alone() -> None:
    api = FakeApi()
    result = invoke(api, "sync", "run", "corp", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == api.frames[-1]


def test_a_failed_job_exits_1_with_its_error() -> None:
    result = invoke(FakeApi([job_doc(), job_doc(state="failed", read=0)]), "sync", "run", "corp")
    assert result.exit_code == 1
    assert "failed" in result.stdout
    assert "directory unavailable: ldap://dir:389 refused" in result.stdout


def test_ctrl_c_asks_the_gateway_to_stop_and_waits_for_what_was_kept() -> None:
    frames = [job_doc(), job_doc(read=50, added=7, unchanged=43)] + [
        job_doc(read=60, added=8, unchanged=52)
    ] * 10
    api = FakeApi(frames)
    result = invoke(api, "sync", "run", "corp", clock=Clock(interrupt_at=(3,)))
    assert result.exit_code == 1
    assert len(api.sent("POST", "/admin/jobs/12/stop")) == 1
    assert "asking the gateway to stop job 12" in result.stdout
    assert "stopped on request: what it wrote before stopping stays" in result.stdout
    assert counts_in(result.stdout)["added"] == 8


def test_a_second_ctrl_c_stops_waiting() -> None:
    api = FakeApi([job_doc()] * 5)
    api.routes[("POST", "/admin/jobs/12/stop")] = lambda r: httpx.Response(
        200, json=job_doc(state="stopping")
    )
    api.routes[("GET", "/admin/jobs/12")] = lambda r: httpx.Response(
        200, json=job_doc(state="stopping")
    )
    result = invoke(api, "sync", "run", "corp", clock=Clock(interrupt_at=(1, 2)))
    assert result.exit_code == 1
    assert "no longer waiting" in result.stderr
    assert "idgate sync status --job 12" in result.stderr


def test_a_job_already_running_is_refused_with_its_id() -> None:
    api = FakeApi()
    api.routes[("POST", "/admin/jobs")] = lambda r: error(
        409, "job_running", "a job of corp is running already (job 7)", job=7
    )
    result = invoke(api, "sync", "run", "corp")
    assert result.exit_code == 1
    assert "job_running, HTTP 409" in result.stderr
    assert "idgate sync status --job 7" in result.stderr


def test_no_wait_returns_once_started() -> None:
    api = FakeApi()
    result = invoke(api, "sync", "run", "corp", "--no-wait")
    assert result.exit_code == 0
    assert [r.method for r in api.requests] == ["POST"]
    assert "started job 12" in result.stdout


def test_losing_the_gateway_briefly_is_survived_and_for_long_gives_up() -> None:
    api = FakeApi()
    down = {"polls": 0, "for": 3}

    def flaky(request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and down["polls"] < down["for"]:
            down["polls"] += 1
            raise httpx.ConnectError("connection refused", request=request)
        return api(request)

    result = invoke(flaky, "sync", "run", "corp")
    assert result.exit_code == 0
    assert "retrying" in result.stdout

    down.update(polls=0, **{"for": 1000})
    result = invoke(flaky, "sync", "run", "corp")
    assert result.exit_code == 1
    assert "gave up after 15 s" in result.stderr
    assert "job 12 may still be running" in result.stderr


def test_on_a_terminal_a_live_panel_runs_and_the_final_table_stays() -> None:
    frames = [job_doc(), job_doc(read=3, added=3), job_doc(state="succeeded", read=5, added=5)]
    result = invoke(FakeApi(frames), "sync", "run", "corp", interactive=True)
    assert result.exit_code == 0
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", result.stdout)
    assert "succeeded" in text
    assert counts_in(text)["added"] == 5


# -- status, history, stop, resync ----------------------------------------------------------


def test_sync_status_of_a_source_with_its_details() -> None:
    api = FakeApi()
    latest = job_doc(state="succeeded", read=2, added=1, not_synchronized=1)
    api.routes[("GET", "/admin/jobs")] = lambda r: httpx.Response(200, json={"jobs": [latest]})
    detailed = {
        **latest,
        "details": {
            "added": [{"user_name": "alice", "external_id": "e-1", "reason": "new"}],
            "not_synchronized": [
                {"user_name": "[red]zed[/red]", "external_id": None, "reason": "limit reached"}
            ],
        },
    }
    api.routes[("GET", "/admin/jobs/12")] = lambda r: httpx.Response(200, json=detailed)
    result = invoke(api, "sync", "status", "corp", "--details", "all")
    assert result.exit_code == 0, result.output
    listing = api.sent("GET", "/admin/jobs")[0].url.params
    assert dict(listing) == {"source": "corp", "kind": "bulk", "limit": "1"}
    assert dict(api.sent("GET", "/admin/jobs/12")[0].url.params) == {"details": "true"}
    assert "added (1 listed)" in result.stdout
    assert "[red]zed[/red]" in result.stdout  # data, never read as markup
    assert "limit reached" in result.stdout

    one = invoke(api, "sync", "status", "--job", "12", "--details", "added", "--json")
    assert json.loads(one.stdout) == detailed
    assert api.requests[-1].url.params["category"] == "added"


def test_sync_status_needs_a_source_or_a_job() -> None:
    assert invoke(FakeApi(), "sync", "status").exit_code == 2
    assert invoke(FakeApi(), "sync", "status", "corp", "--job", "3").exit_code == 2


def test_sync_status_of_a_source_that_never_ran_exits_1() -> None:
    api = FakeApi()
    api.routes[("GET", "/admin/jobs")] = lambda r: httpx.Response(200, json={"jobs": []})
    result = invoke(api, "sync", "status", "corp")
    assert result.exit_code == 1
    assert "no bulk sync of corp has run yet" in result.stderr


def test_sync_history_table_and_json() -> None:
    answer = {"jobs": [job_doc(13, "succeeded", read=5), job_doc(12, "failed")]}
    api = FakeApi()
    api.routes[("GET", "/admin/jobs")] = lambda r: httpx.Response(200, json=answer)
    result = invoke(api, "sync", "history", "--source", "corp", "--limit", "2")
    assert result.exit_code == 0
    assert "bulk sync of corp" in result.stdout  # one kind, one source: the table's title
    assert re.search(r"13 +succeeded +2025-03-01 10:00 +4.0 s +5 ", result.stdout)
    assert dict(api.requests[-1].url.params) == {"source": "corp", "limit": "2"}
    assert json.loads(invoke(api, "sync", "history", "--json").stdout) == answer
    assert invoke(api, "sync", "history", "--limit", "0").exit_code == 2


def test_sync_stop_finds_the_running_job_of_the_source() -> None:
    api = FakeApi()
    jobs = {"jobs": [job_doc(14, "running"), job_doc(13, "succeeded")]}
    api.routes[("GET", "/admin/jobs")] = lambda r: httpx.Response(200, json=jobs)
    api.routes[("POST", "/admin/jobs/14/stop")] = lambda r: httpx.Response(
        200, json=job_doc(14, "stopping")
    )
    result = invoke(api, "sync", "stop", "corp")
    assert result.exit_code == 0
    assert "job 14 · bulk sync of corp: stopping; what it wrote stays" in result.stdout

    jobs["jobs"] = [job_doc(13, "succeeded")]
    idle = invoke(api, "sync", "stop", "corp")
    assert idle.exit_code == 1
    assert "no job of corp is running" in idle.stderr


def test_resync_waits_for_every_job() -> None:
    first = {"batch": "b-1", "done": False, "jobs": [job_doc(20), {**job_doc(21), "source": "ad"}],
             "skipped": []}  # fmt: skip
    last = {
        **first,
        "done": True,
        "jobs": [
            job_doc(20, "succeeded", read=5, added=5),
            {**job_doc(21, "succeeded", read=9, updated=2), "source": "ad"},
        ],
    }
    answers = iter([first, last])
    api = FakeApi()
    api.routes[("POST", "/admin/jobs/resync")] = lambda r: httpx.Response(202, json=first)
    api.routes[("GET", "/admin/jobs/resync/b-1")] = lambda r: httpx.Response(
        200, json=next(answers, last)
    )
    result = invoke(api, "sync", "resync", "--wait")
    assert result.exit_code == 0, result.output
    assert "resync batch b-1: done" in result.stdout
    assert re.search(r"21 +ad +succeeded ", result.stdout)

    skipped = {**last, "skipped": [{"source": "hr", "reason": "a job is running already"}]}
    api.routes[("POST", "/admin/jobs/resync")] = lambda r: httpx.Response(202, json=skipped)
    result = invoke(api, "sync", "resync", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == skipped


def test_refresh_and_cleanup_start_their_kind_and_wait() -> None:
    api = FakeApi(
        [{**job_doc(), "kind": "refresh"}, {**job_doc(state="succeeded"), "kind": "refresh"}]
    )
    result = invoke(api, "refresh", "run", "corp", "--wait")
    assert result.exit_code == 0
    assert "refresh of corp" in result.stdout
    assert json.loads(api.requests[0].content) == {"kind": "refresh", "source": "corp"}

    cleanup = {**job_doc(state="succeeded", deleted=2), "kind": "cleanup", "source": None}
    api = FakeApi([{**cleanup, "state": "running", "ended_at": None}, cleanup])
    result = invoke(api, "cleanup", "run", "--wait")
    assert result.exit_code == 0
    assert json.loads(api.requests[0].content) == {"kind": "cleanup", "source": None}
    assert "job 12 · cleanup" in result.stdout
    assert re.search(r"deleted\s+[│|]\s+2", result.stdout)


# -- users ----------------------------------------------------------------------------------


def users_api(*found: dict[str, Any]) -> FakeApi:
    api = FakeApi()
    api.routes[("GET", "/admin/users")] = lambda r: httpx.Response(
        200, json={"users": [u for u in found if u["user_name"] == r.url.params["user_name"]]}
    )
    return api


def test_users_show_by_name_and_by_id() -> None:
    alice = user_doc()
    api = users_api(alice)
    result = invoke(api, "users", "show", "alice", "--source", "corp")
    assert result.exit_code == 0, result.output
    assert dict(api.requests[0].url.params) == {
        "source": "corp",
        "user_name": "alice",
        "include_unsynchronized": "false",
    }
    for shown in ("uid=alice,ou=people,dc=example,dc=org", "active", "+1 202 555 0111 (manual)",
                  "title: [bold]engineer[/bold]", "2025-03-01 10:00:00 UTC"):  # fmt: skip
        assert shown in result.stdout, shown
    assert (
        json.loads(invoke(api, "users", "show", "alice", "--source", "corp", "--json").stdout)
        == alice
    )

    api.routes[("GET", "/admin/users/u-alice")] = lambda r: httpx.Response(200, json=alice)
    assert invoke(api, "users", "show", "--id", "u-alice").exit_code == 0


def test_users_show_of_nobody_exits_1_and_suggests_the_lookup() -> None:
    api = users_api()
    result = invoke(api, "users", "show", "zed", "--source", "corp")
    assert result.exit_code == 1
    assert "no user 'zed' in source corp" in result.stderr
    assert "--include-unsynchronized" in result.stderr
    invoke(api, "users", "show", "zed", "--source", "corp", "--include-unsynchronized")
    assert api.requests[-1].url.params["include_unsynchronized"] == "true"


def test_users_commands_need_a_name_with_a_source_or_an_id() -> None:
    assert invoke(FakeApi(), "users", "show").exit_code == 2
    assert invoke(FakeApi(), "users", "show", "alice").exit_code == 2
    assert invoke(FakeApi(), "users", "disable", "alice", "--id", "u-1").exit_code == 2


def test_users_disable_sends_the_comment() -> None:
    api = users_api(user_doc())
    disabled = user_doc(status="disabled", disabled_by="admin", reason="admin")
    api.routes[("POST", "/admin/users/u-alice/disable")] = lambda r: httpx.Response(
        200, json=disabled
    )
    result = invoke(api, "users", "disable", "alice", "--source", "corp", "--comment", "left")
    assert result.exit_code == 0
    assert json.loads(api.requests[-1].content) == {"comment": "left"}
    assert "alice (corp): disabled by admin (admin)" in result.stdout


def test_a_refused_enable_prints_the_reason_and_exits_1() -> None:
    api = users_api(user_doc("bob", status="disabled", disabled_by="source"))
    api.routes[("POST", "/admin/users/u-bob/enable")] = lambda r: error(
        409,
        "enable_refused",
        "the source reports this user disabled: it cannot be enabled here",
        source_status="disabled",
    )
    result = invoke(api, "users", "enable", "bob", "--source", "corp")
    assert result.exit_code == 1
    assert "the source reports this user disabled" in result.stderr
    assert "enable_refused, HTTP 409" in result.stderr
    as_json = invoke(api, "users", "enable", "bob", "--source", "corp", "--json")
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["source_status"] == "disabled"
    assert api.requests[-1].content == b"{}"


def test_users_sync_adds_a_user_not_yet_in_the_store() -> None:
    api = FakeApi()
    lookups: list[str] = []

    def find(request: httpx.Request) -> httpx.Response:
        include = request.url.params["include_unsynchronized"]
        lookups.append(include)
        return httpx.Response(200, json={"users": [user_doc("nina")] if include == "true" else []})

    api.routes[("GET", "/admin/users")] = find
    api.routes[("POST", "/admin/users/u-nina/sync")] = lambda r: httpx.Response(
        200, json={"outcome": "unchanged", "user": user_doc("nina")}
    )
    result = invoke(api, "users", "sync", "nina", "--source", "corp")
    assert result.exit_code == 0, result.output
    assert lookups == ["false", "true"]
    assert "sync: unchanged" in result.stdout


def test_an_upstream_outage_on_a_user_sync_exits_1() -> None:
    api = users_api(user_doc())
    api.routes[("POST", "/admin/users/u-alice/sync")] = lambda r: error(
        502, "upstream_unavailable", "the directory corp could not be read"
    )
    result = invoke(api, "users", "sync", "alice", "--source", "corp")
    assert result.exit_code == 1
    assert "could not be read (upstream_unavailable, HTTP 502)" in result.stderr


# -- the client on its own ------------------------------------------------------------------


def test_client_errors_carry_the_body_and_ids_are_escaped() -> None:
    seen: list[str] = []

    def api(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        return error(400, "invalid_input", "must be 1-1000", field="limit")

    with AdminClient("http://gw:8080/", TOKEN, transport=httpx.MockTransport(api)) as client:
        with pytest.raises(AdminError) as raised:
            client.user("a/b?c")
        assert TOKEN not in repr(client)
    assert seen == ["/admin/users/a%2Fb%3Fc"]
    assert (raised.value.status, raised.value.code, raised.value.field) == (
        400,
        "invalid_input",
        "limit",
    )
    assert raised.value.document() == {
        "error": "invalid_input",
        "detail": "must be 1-1000",
        "field": "limit",
    }


def test_client_keeps_a_path_prefix_and_reads_204_as_empty() -> None:
    def api(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/idgate/admin/jobs/3/stop"
        return httpx.Response(204)

    client = AdminClient("https://proxy/idgate", TOKEN, transport=httpx.MockTransport(api))
    assert client.stop_job(3) == {}
    client.close()


# -- end to end: a real gateway on a real slapd ---------------------------------------------
#
# `counted` is a gateway of one test on a directory of its own (exact counts, user limit 2);
# `shared` is one gateway for the rest of the module on another directory, whose tests each
# work on their own seed user (dave, frank) or change no user at all.


def _require_admin_api() -> None:
    if importlib.util.find_spec("scim.admin") is None:
        pytest.skip("the admin API (scim/admin/) is not in this tree yet")


def _started(directory: Slapd, **source: Any) -> AdminGateway:
    process = AdminGateway([slapd_source([directory.url], **source)])
    process.start()
    try:
        answer = httpx.get(
            f"{process.http_url}/admin/whoami",
            headers={"Authorization": f"Bearer {SUPER_TOKEN}"},
            timeout=10,
        )
        assert answer.status_code == 200, f"GET /admin/whoami: {answer.status_code} {answer.text}"
        assert answer.json() == {"name": "ops", "role": "super_admin"}
    except BaseException:
        process.close()
        raise
    return process


@pytest.fixture
def counted(slapd_factory: Callable[..., Slapd]) -> Iterator[AdminGateway]:
    _require_admin_api()
    process = _started(slapd_factory(), user_limit=2)
    yield process
    process.close()


@pytest.fixture(scope="module")
def shared_directory() -> Iterator[Slapd]:
    _require_admin_api()
    try:
        find_slapd()
    except SlapdNotInstalled:
        pytest.skip(SKIP_REASON)
    with Slapd() as server:
        yield server


@pytest.fixture(scope="module")
def shared(shared_directory: Slapd) -> Iterator[AdminGateway]:
    process = _started(shared_directory)
    yield process
    process.close()


def run_ok(gateway: AdminGateway, *args: str) -> str:
    result = idgate_cli(gateway.http_url, *args)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert SUPER_TOKEN not in result.stdout + result.stderr
    return result.stdout


def test_e2e_sync_run_table_matches_the_api(counted: AdminGateway) -> None:
    text = run_ok(counted, "sync", "run", "corp")
    assert "started job 1 · bulk sync of corp" in text
    assert re.search(r"^state +succeeded", text, re.MULTILINE), text
    # ou=people: alice and dave are added; bob (locked) and carol (expired) are not, and
    # frank is past the user limit of 2 (SPEC §5.3). erin is out of scope.
    assert counts_in(text) == {
        "read": 5,
        "added": 2,
        "updated": 0,
        "unchanged": 0,
        "disabled": 0,
        "not_synchronized": 3,
    }

    job = json.loads(run_ok(counted, "sync", "status", "corp", "--json"))
    assert (job["id"], job["kind"], job["source"], job["state"]) == (1, "bulk", "corp", "succeeded")
    assert {k: v for k, v in job["counts"].items() if k in counts_in(text)} == counts_in(text)
    assert job["requested_by"] == "ops"

    details = run_ok(counted, "sync", "status", "--job", "1", "--details", "not_synchronized")
    assert "not synchronized (3 listed)" in details
    assert re.search(r"frank .*limit reached", details)
    listed = json.loads(run_ok(counted, "sync", "status", "corp", "--details", "added", "--json"))[
        "details"
    ]
    assert sorted(row["user_name"] for row in listed["added"]) == ["alice", "dave"]

    again = json.loads(run_ok(counted, "sync", "run", "corp", "--json"))
    assert (again["id"], again["state"]) == (2, "succeeded")
    assert again["counts"]["read"] == 5
    assert again["counts"]["added"] == 0
    history = run_ok(counted, "sync", "history", "--source", "corp")
    assert re.search(r"^ +2 +succeeded ", history, re.MULTILINE), history
    assert re.search(r"^ +1 +succeeded ", history, re.MULTILINE), history


def test_e2e_users_show_disable_enable(shared: AdminGateway) -> None:
    shown = json.loads(
        run_ok(shared, "users", "show", "dave", "--source", "corp", "--include-unsynchronized",
               "--json")
    )  # fmt: skip
    assert (shown["user_name"], shown["source"], shown["status"]) == ("dave", "corp", "active")
    table = run_ok(shared, "users", "show", "dave", "--source", "corp")
    assert shown["dn"] in table and "dave@example.org" in table

    disable = ("users", "disable", "dave", "--source", "corp", "--comment", "left", "--json")
    disabled = json.loads(run_ok(shared, *disable))
    assert (disabled["status"], disabled["disabled_by"]) == ("disabled", "admin")
    line = run_ok(shared, "users", "enable", "--id", shown["id"], "--comment", "back")
    assert "dave (corp): active" in line
    by_id = json.loads(run_ok(shared, "users", "show", "--id", shown["id"], "--json"))
    assert by_id["status"] == "active"


def test_e2e_enable_refused_while_the_source_disables(
    shared: AdminGateway, shared_directory: Slapd
) -> None:
    # `users sync` adds frank (not in the store yet), then the directory locks him.
    first = json.loads(run_ok(shared, "users", "sync", "frank", "--source", "corp", "--json"))
    assert first["user"]["status"] == "active"
    shared_directory.modify(
        shared_directory.users["frank"].dn, {"pwdAccountLockedTime": "000001010000Z"}
    )
    synced = json.loads(run_ok(shared, "users", "sync", "frank", "--source", "corp", "--json"))
    assert synced["outcome"] == "disabled"
    assert (synced["user"]["status"], synced["user"]["disabled_by"]) == ("disabled", "source")

    refused = idgate_cli(shared.http_url, "users", "enable", "frank", "--source", "corp")
    assert refused.returncode == 1
    assert "enable_refused, HTTP 409" in refused.stderr
    assert "source status: disabled" in refused.stderr  # the body's source_status


def test_e2e_refresh_and_cleanup_run_wait(shared: AdminGateway) -> None:
    text = run_ok(shared, "refresh", "run", "corp", "--wait")
    assert "refresh of corp" in text
    assert re.search(r"^state +succeeded", text, re.MULTILINE), text
    cleanup = run_ok(shared, "cleanup", "run", "--wait")
    assert "· cleanup" in cleanup
    assert re.search(r"^state +succeeded", cleanup, re.MULTILINE), cleanup
    history = json.loads(run_ok(shared, "sync", "history", "--limit", "2", "--json"))
    assert [(j["kind"], j["state"]) for j in history["jobs"]] == [
        ("cleanup", "succeeded"),
        ("refresh", "succeeded"),
    ]


def test_e2e_roles_and_tokens(shared: AdminGateway) -> None:
    refused = idgate_cli(shared.http_url, "sync", "run", "corp", token=HELP_DESK_TOKEN)
    assert refused.returncode == 1
    assert "forbidden, HTTP 403" in refused.stderr
    desk = idgate_cli(shared.http_url, "users", "show", "alice", "--source", "corp",
                      "--include-unsynchronized", "--json", token=HELP_DESK_TOKEN)  # fmt: skip
    assert desk.returncode == 0, desk.stderr
    wrong = idgate_cli(shared.http_url, "sync", "history", token="not-a-token-of-anyone")
    assert wrong.returncode == 1
    assert "unauthorized, HTTP 401" in wrong.stderr
    assert "not-a-token-of-anyone" not in wrong.stdout + wrong.stderr
    assert idgate_cli(shared.http_url, "sync", "history", token=None).returncode == 2
