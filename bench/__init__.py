"""Benchmarks of idgate against real servers; `python -m bench --help` lists them.

Not part of the installed package: run them from a checkout, with the project's venv.
"""
