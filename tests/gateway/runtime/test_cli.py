"""The `idgate` command, run as a real process the way an operator runs it."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from gateway.auth.secrets import verify_secret
from gateway.operations.health import Check
from scim.app import create_app

IDGATE = str(Path(sys.executable).parent / "idgate")
SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "config"


def idgate(*args: str, cwd: Path | None = None, stdin: str | None = None, env=None):
    return subprocess.run(
        [IDGATE, *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def write_config(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "idgate.toml"
    path.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path}/gw.db"\n\n[http]\nlisten = "127.0.0.1:{port}"\n'
    )
    return path


def test_version():
    result = idgate("--version")
    assert result.returncode == 0
    assert "idgate, version 0.1.0" in result.stdout


def test_config_check_reports_the_three_problems_by_key_and_fails():
    result = idgate("config", "check", str(SAMPLES / "three-issues.toml"))
    assert result.returncode == 1
    problems = [
        line for line in result.stderr.splitlines() if ": " in line and "errors in" not in line
    ]
    assert len(problems) == 3, result.stderr
    keys = sorted(line.split(":", 1)[0].strip() for line in problems)
    assert keys == ["store.pool_size", "sync.refresh_after_days", "sync.refresh_afterdays"]
    assert "at least 7" in result.stderr


def test_config_check_accepts_a_valid_file(tmp_path):
    result = idgate("config", "check", str(write_config(tmp_path, 8080)))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def test_config_check_of_a_missing_file_fails_clearly(tmp_path):
    result = idgate("config", "check", str(tmp_path / "nope.toml"))
    assert result.returncode == 1
    assert "nope.toml" in result.stderr


def test_hash_secret_from_stdin_verifies_and_never_echoes():
    result = idgate("hash-secret", "--stdin", stdin="s3cret-value\n")
    assert result.returncode == 0
    hashed = result.stdout.strip()
    assert verify_secret(hashed, "s3cret-value")
    assert "s3cret-value" not in result.stdout + result.stderr


def test_hash_secret_refuses_an_empty_secret():
    result = idgate("hash-secret", "--stdin", stdin="\n")
    assert result.returncode != 0
    assert "empty" in result.stderr


def test_generated_token_matches_its_hash():
    result = idgate("hash-secret", "--generate-token")
    assert result.returncode == 0
    token = result.stderr.rsplit(":", 1)[1].strip()
    assert verify_secret(result.stdout.strip(), token)


def test_db_check_upgrade_and_serve_refusal(tmp_path):
    config = write_config(tmp_path, 0)
    check = idgate("db", "check", "--config", str(config))
    assert check.returncode == 1
    assert "idgate db upgrade" in check.stderr
    refused = idgate("serve", "--config", str(config))
    assert refused.returncode == 1
    assert "idgate db upgrade" in refused.stderr
    assert idgate("db", "upgrade", "--config", str(config)).returncode == 0
    assert idgate("db", "upgrade", "--config", str(config)).returncode == 0  # repeatable
    assert idgate("db", "check", "--config", str(config)).returncode == 0


def wait_ready_file(path: Path, process: subprocess.Popen) -> dict[str, Any]:
    """The ready file `idgate serve --ready-file` writes once every front listens."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"idgate exited early: {process.communicate()[1]}")
        if path.exists():
            ready: dict[str, Any] = json.loads(path.read_text())
            return ready
        time.sleep(0.05)
    pytest.fail(f"idgate wrote no ready file {path} within 60 s")


@pytest.mark.parametrize("with_config", [True, False], ids=["config", "zero-config"])
def test_serve_answers_health_and_readiness_then_stops_on_sigterm(tmp_path, with_config):
    # Port 0 for both fronts: the gateway chooses, and says where in its ready file.
    env = {"IDGATE_LDAP__LISTEN": "127.0.0.1:0"}
    if with_config:
        config = write_config(tmp_path, 0)
        assert idgate("db", "upgrade", "--config", str(config)).returncode == 0
        args = ["serve", "--config", str(config)]
    else:
        # No config: the built-in demo.
        args = ["serve"]
        env["IDGATE_HTTP__LISTEN"] = "127.0.0.1:0"
    ready_file = tmp_path / "ready.json"
    process = subprocess.Popen(
        [IDGATE, *args, "--ready-file", str(ready_file)],
        cwd=tmp_path,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = wait_ready_file(ready_file, process)
        assert ready["pid"] == process.pid
        assert ready["ldaps"] is None
        http, ldap = ready["http"], ready["ldap"]
        assert ready["urls"] == [ldap, http]
        assert httpx.get(f"{http}/healthz", timeout=5).json() == {"status": "ok"}
        readiness = httpx.get(f"{http}/readyz", timeout=5)
        assert readiness.status_code == 200
        assert readiness.json()["status"] == "ready"
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=20)
    assert not ready_file.exists()  # removed at exit
    # SIGTERM is a graceful stop: both fronts close, then the process exits normally.
    assert process.returncode == 0, stderr
    assert "idgate shutting down" in stderr
    assert f"idgate LDAP listening on {ldap}" in stderr
    assert "alembic" not in stderr.split("idgate HTTP listening", 1)[1]  # no probe noise
    if not with_config:
        assert (tmp_path / "idgate.db").exists()
        assert "idgate demo" in stderr


def test_readiness_failure_is_503_with_the_reason():
    checks = [Check("store", True, "reachable"), Check("schema", False, "run idgate db upgrade")]
    client = TestClient(create_app(lambda: checks))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"][1] == {
        "name": "schema",
        "ok": False,
        "detail": "run idgate db upgrade",
        "decides": True,
    }
