"""`python -m bench <benchmark> [options]`: the command line of the benchmarks."""

import argparse
import logging
import sys

from bench import auth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    commands = parser.add_subparsers(dest="benchmark", required=True)
    auth.add_arguments(
        commands.add_parser("auth", help=auth.SUMMARY, description=auth.__doc__),
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return auth.run(args)


if __name__ == "__main__":
    sys.exit(main())
