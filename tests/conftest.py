"""Suite-wide rules.

Real servers (slapd, PostgreSQL, later Samba AD and FreeRADIUS) are started or reached by
fixtures that skip with a reason when the server is not installed. CI sets
IDGATE_REQUIRE_REAL_SERVERS=1: there a skip means a test did not run against the real thing,
so it is reported as a failure.
"""

import os

import pytest

pytest_plugins = ["tests.servers.fixtures", "tests.store_fixtures"]

REQUIRE_REAL_SERVERS = os.environ.get("IDGATE_REQUIRE_REAL_SERVERS") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_REAL_SERVERS and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped, but IDGATE_REQUIRE_REAL_SERVERS=1 forbids skips: {reason}"
