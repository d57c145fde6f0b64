"""A gateway process for the cross-process JIT test: N threads bind one user at one instant.

    python -m tests.gateway.jit_worker CONFIG_JSON NAME PASSWORD THREADS BARRIER_DIR PROCESSES

Each worker builds its runtime, then meets the others at a file barrier (one file per
worker in BARRIER_DIR; all go once PROCESSES are there), so the burst starts when every
process is ready, not at a guessed instant. Prints one JSON line: {"reasons": {reason: n}}.
"""

import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from gateway.config import parse_config
from gateway.runtime.main import build
from tests.reactor import blocking

#: How long a worker waits for the others before it gives up (and says so).
BARRIER_SECONDS = 60.0


def meet(barrier: Path, processes: int) -> None:
    (barrier / str(os.getpid())).touch()
    deadline = time.monotonic() + BARRIER_SECONDS
    while (ready := len(list(barrier.iterdir()))) < processes:
        if time.monotonic() > deadline:
            sys.exit(
                f"timed out after {BARRIER_SECONDS:g} s waiting for the other workers:"
                f" {ready} of {processes} ready"
            )
        time.sleep(0.002)


def main(config_json: str, name: str, password: str, threads: int, barrier: Path, n: int) -> None:
    runtime = build(parse_config(json.loads(config_json), {}))
    reasons: Counter[str] = Counter()
    lock = threading.Lock()
    go = threading.Event()

    def bind() -> None:
        go.wait()
        outcome = blocking(runtime.authenticator.authenticate, name, password)
        with lock:
            reasons[outcome.reason.value] += 1

    workers = [threading.Thread(target=bind) for _ in range(threads)]
    for worker in workers:
        worker.start()
    meet(barrier, n)
    go.set()
    for worker in workers:
        worker.join()
    runtime.close()
    print(json.dumps({"reasons": dict(reasons)}))


if __name__ == "__main__":
    main(
        sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), Path(sys.argv[5]), int(sys.argv[6])
    )
