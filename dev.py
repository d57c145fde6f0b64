#!/usr/bin/env python3
"""Run idgate or its tests from a fresh checkout, with nothing but Python 3.11+.

    python3 dev.py run [idgate serve options]   # start the gateway (SQLite, no config needed)
    python3 dev.py test [pytest options]        # run the whole test suite
    python3 dev.py bench [--quick]              # every benchmark side by side (bench/README.md)

Both create `.venv/` on first use and install idgate with the exact versions in
constraints.txt; they reinstall when pyproject.toml or constraints.txt changes.
Standard library only: this script runs before anything is installed.
"""

import os
import subprocess
import sys
import venv
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
        args = [str(BIN / "python"), "-m", "pytest", *rest]
    return subprocess.run(args, cwd=ROOT, check=False).returncode  # noqa: S603 - no shell


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
