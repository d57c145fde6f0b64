"""What an operator reads of a running gateway besides users and jobs (SPEC §7, §8).

- `admin` (Administration): the configured sources, a source's connection test, the effective
  settings and the audit log.
- `health` (Readiness): whether this process can serve, for `/readyz`.
"""
