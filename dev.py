#!/usr/bin/env python3
"""Run idgate or its tests from a fresh checkout, with nothing but Python 3.11+.

    python3 dev.py run [idgate serve options]   # start the gateway (SQLite, no config needed)
    python3 dev.py test [pytest options]        # run the whole test suite
    python3 dev.py test --repeat N [options]    # run it N times; say which tests failed when
    python3 dev.py bench [--quick]              # every benchmark side by side (bench/README.md)

Both create `.venv/` on first use and install idgate with the exact versions in
constraints.txt; they reinstall when pyproject.toml or constraints.txt changes.
Standard library only: this script runs before anything is installed.
"""

import os
import subprocess
import sys
import venv
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".idgate-installed"
INPUTS = [ROOT / "pyproject.toml", ROOT / "constraints.txt"]


def ensure_venv(extras: str = "test") -> None:
    """Create .venv and install idgate with `extras` (pinned), unless already done."""
    if not (BIN / "python").exists():
        print("creating .venv ...", flush=True)
        venv.create(VENV, with_pip=True)
    stamp = STAMP.with_name(f"{STAMP.name}-{extras.replace(',', '-')}")
    newest = max(p.stat().st_mtime for p in INPUTS)
    if stamp.exists() and stamp.stat().st_mtime >= newest:
        return
    print("installing idgate and its pinned dependencies into .venv ...", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(  # noqa: S603 - fixed argv, no shell
        [*pip, "-c", str(ROOT / "constraints.txt"), "-e", f"{ROOT}[{extras}]"], check=True, cwd=ROOT
    )
    # python-ldap (a real client the tests drive) compiles against OpenLDAP's headers; where
    # they are missing (Debian: libldap2-dev libsasl2-dev) its tests skip and say so.
    optional = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [*pip, "-c", str(ROOT / "constraints.txt"), "python-ldap"],
        cwd=ROOT,
        check=False,
        capture_output=True,
    )
    if optional.returncode != 0:
        print(
            "note: python-ldap could not be built (needs libldap2-dev libsasl2-dev);"
            " its tests will be skipped",
            flush=True,
        )
    stamp.touch()


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - this check is for people running an older Python
        print(f"idgate needs Python 3.11 or newer; this is {sys.version.split()[0]}")
        return 2
    if not argv or argv[0] not in {"run", "test", "bench"}:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    ensure_venv("test,bench" if command == "bench" else "test")
    if command == "run":
        args = [str(BIN / "idgate"), "serve", *rest]
    elif command == "bench":
        args = [str(BIN / "python"), "-m", "bench", "all", *rest]
    else:
        if rest[:1] == ["--repeat"] and len(rest) > 1 and rest[1].isdigit():
            return repeat(int(rest[1]), rest[2:])
        args = [str(BIN / "python"), "-m", "pytest", *rest]
    return subprocess.run(args, cwd=ROOT, check=False).returncode  # noqa: S603 - no shell


def repeat(runs: int, options: list[str]) -> int:
    """The flake detector: the suite `runs` times in a row, then every test that failed in
    any run, with the runs it failed in. Exit 0 only when every run passed."""
    failed: dict[str, list[int]] = {}
    for run in range(1, runs + 1):
        report = VENV / f"repeat-{run}.xml"
        print(f"== run {run} of {runs}", flush=True)
        command = [str(BIN / "python"), "-m", "pytest", f"--junitxml={report}", *options]
        code = subprocess.run(command, cwd=ROOT, check=False).returncode  # noqa: S603
        for name in _failures(report):
            failed.setdefault(name, []).append(run)
        if code not in (0, 1) and not report.exists():
            failed.setdefault(f"(run {run}: pytest exited {code} without a report)", []).append(run)
    print(f"\n== {runs} runs: {len(failed)} test(s) failed at least once")
    for name, where in sorted(failed.items()):
        print(f"{name}: failed in run {', '.join(map(str, where))} of {runs}")
    return 1 if failed else 0


def _failures(report: Path) -> list[str]:
    """The tests a JUnit XML report says failed or errored (classname::name)."""
    if not report.exists():
        return []
    names = []
    for case in ET.parse(report).iter("testcase"):  # noqa: S314 - our own pytest's file
        if case.find("failure") is not None or case.find("error") is not None:
            names.append(f"{case.get('classname', '')}::{case.get('name', '')}")
    return names


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
