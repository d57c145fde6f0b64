"""A gateway process for the cross-process job tests (test_bulk_sync.py).

python -m tests.gateway.job_worker race CONFIG_JSON BARRIER_DIR PARTIES
    Builds a runtime, waits until PARTIES workers are ready (a file each in BARRIER_DIR),
    then starts the bulk job of "corp". Prints one JSON line: {"started": id, "state":
    final state} when it ran the job (it waits for the end), {"running": job_id} when
    JobRunning refused it.

python -m tests.gateway.job_worker run CONFIG_JSON
    Builds a runtime, starts the bulk job of "corp", prints {"job": id} and then idles
    until it is killed (or HANG_SECONDS pass, so a lost worker cannot outlive the test
    run for long).
"""

import json
import os
import sys
import threading
import time
from pathlib import Path

from gateway.config import parse_config
from gateway.engine.types import Role
from gateway.jobs.service import JobKind, JobRunning
from gateway.runtime.main import build
from gateway.users.service import Actor

SUPER = Actor("ops", Role.SUPER_ADMIN)
HANG_SECONDS = 120
BARRIER_SECONDS = 60


def race(config_json: str, barrier: Path, parties: int) -> None:
    runtime = build(parse_config(json.loads(config_json), {}))
    try:
        (barrier / f"ready-{os.getpid()}").touch()
        # A barrier across processes: go as soon as every worker has said it is ready.
        deadline = time.monotonic() + BARRIER_SECONDS
        while (ready := len(list(barrier.glob("ready-*")))) < parties:
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"timed out after {BARRIER_SECONDS} s waiting for the other workers:"
                    f" {ready} of {parties} ready"
                )
            time.sleep(0.001)
        try:
            view = runtime.jobs.start(SUPER, JobKind.BULK, "corp")
        except JobRunning as exc:
            print(json.dumps({"running": exc.job_id}), flush=True)
            return
        done = runtime.jobs.wait(view.id, 60)
        print(json.dumps({"started": view.id, "state": done.state.value}), flush=True)
    finally:
        runtime.close()


def run(config_json: str) -> None:
    runtime = build(parse_config(json.loads(config_json), {}))
    view = runtime.jobs.start(SUPER, JobKind.BULK, "corp")
    print(json.dumps({"job": view.id}), flush=True)
    threading.Event().wait(HANG_SECONDS)  # the test SIGKILLs this process meanwhile
    runtime.close()


if __name__ == "__main__":
    if sys.argv[1] == "race":
        race(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))
    elif sys.argv[1] == "run":
        run(sys.argv[2])
    else:
        raise SystemExit(f"unknown mode {sys.argv[1]!r}")
