"""`python -m bench <benchmark> [options]`: the command line of the benchmarks.

`python -m bench all [--quick] [--profile]` runs every benchmark with its peer and writes one
table (bench/suite.py).
"""

import argparse
import importlib.util
import logging
import sys
from types import ModuleType

from bench import auth, bulksync, flood, ldap, scim, suite, upstream

BENCHMARKS: dict[str, ModuleType] = {
    "all": suite,
    "auth": auth,
    "bulksync": bulksync,
    "flood": flood,
    "ldap": ldap,
    "scim": scim,
    "upstream": upstream,
}
try:
    from bench import soak  # type: ignore[attr-defined,unused-ignore]
except ImportError:
    # bench/soak.py not there (yet): the others still run. Any other import error is raised.
    if importlib.util.find_spec("bench.soak") is not None:
        raise
else:
    BENCHMARKS["soak"] = soak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    commands = parser.add_subparsers(dest="benchmark", required=True)
    for name, benchmark in BENCHMARKS.items():
        benchmark.add_arguments(
            commands.add_parser(name, help=benchmark.SUMMARY, description=benchmark.__doc__),
        )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return int(BENCHMARKS[args.benchmark].run(args))


if __name__ == "__main__":
    sys.exit(main())
