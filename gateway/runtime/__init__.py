"""One gateway process: the command, its wiring, its logs and metrics (SPEC §8).

- `cli`: the `idgate` command; `wiring`: the services built from the configuration;
  `main`: the composition root that connects them to both fronts and serves them, the one
  module that imports a front (import-linter holds every other module of `gateway` away from
  the fronts); `demo`: what runs with no configuration.
- `logs` (text and JSON lines), `metrics` (Prometheus), `readyfile` (where the fronts listen).
"""
