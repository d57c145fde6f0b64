"""`python -m bench <benchmark> [options]`: the command line of the benchmarks."""

import argparse
import logging
import sys

from bench import auth, bulksync, ldap, scim

BENCHMARKS = {"auth": auth, "bulksync": bulksync, "ldap": ldap, "scim": scim}


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
