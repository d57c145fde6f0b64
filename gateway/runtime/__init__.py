"""One gateway process: the command, its wiring, its logs and metrics (SPEC §8).

- `cli`: the `idgate` command; `main`: the composition root, the one place that wires the
  store, the services and both fronts (import-linter holds every other module of `gateway`
  away from the fronts); `demo`: what runs with no configuration.
- `logs` (text and JSON lines), `metrics` (Prometheus), `readyfile` (where the fronts listen).
"""
