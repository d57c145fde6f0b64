"""Pure decision logic: status rules (SPEC §4), status mapping (§4.3), phone provenance (§3),
roles (§4.4).

Nothing here does I/O or reads the clock: `now` is always an argument, so every rule is a
plain function that can be tested row by row.
"""
