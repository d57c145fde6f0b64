"""A gateway process for the cross-process JIT test: N threads bind one user at one instant.

    python -m tests.gateway.jit_worker CONFIG_JSON NAME PASSWORD THREADS START_AT

Prints one JSON line: {"reasons": {reason: count}}.
"""

import json
import sys
import threading
import time
from collections import Counter

from gateway.config import parse_config
from gateway.main import build


def main(config_json: str, name: str, password: str, threads: int, start_at: float) -> None:
    runtime = build(parse_config(json.loads(config_json), {}))
    reasons: Counter[str] = Counter()
    lock = threading.Lock()

    def bind() -> None:
        time.sleep(max(0.0, start_at - time.time()))
        outcome = runtime.authenticator.authenticate(name, password)
        with lock:
            reasons[outcome.reason.value] += 1

    workers = [threading.Thread(target=bind) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    runtime.close()
    print(json.dumps({"reasons": dict(reasons)}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
