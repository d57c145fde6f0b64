"""The `idgate` command.

    idgate serve [--config FILE] [--only ldap|http]
                                        run the gateway (no config: the built-in demo)
    idgate db upgrade [--config FILE]   bring the store's schema to this version
    idgate db check [--config FILE]     say whether the schema is current (exit 1 if not)
    idgate config check FILE            validate a config file (exit 1 on any problem)
    idgate hash-secret                  print the argon2 hash of a secret read from the terminal
    idgate sync run|status|history|stop|resync
                                        bulk sync jobs of a running gateway (admin API)
    idgate users show|sync|disable|enable
                                        one user, through a running gateway's admin API
    idgate refresh run SOURCE, idgate cleanup run
                                        start the daily jobs now (--wait: follow them)
    idgate --version

The admin commands (gateway/admincli/) take --url, the token from $IDGATE_ADMIN_TOKEN or
--token-file, and --json.

Startup stays cheap for them: the configuration, the store (SQLAlchemy, alembic) and argon2
are imported inside the commands that use them, not here.

Configuration problems are printed one per line as `key: problem`; no secret is ever echoed.
"""

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from gateway import __version__, admincli

if TYPE_CHECKING:
    from gateway.config import Config

CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML configuration file (see docs/configuration.md). Without it: built-in defaults.",
)


def _load(config_path: Path | None) -> "Config":
    """Load the configuration, or the defaults when no file is given; exit 1 on problems."""
    from gateway.config import ConfigError, load_config, parse_config

    try:
        if config_path is None:
            return parse_config({}, os.environ)
        return load_config(config_path, os.environ)
    except ConfigError as exc:
        click.echo(f"configuration errors in {config_path or 'the defaults'}:", err=True)
        click.echo(str(exc), err=True)
        sys.exit(1)


@click.group()
@click.version_option(__version__, prog_name="idgate")
def main() -> None:
    """idgate: one user store for LDAP/AD directories and SCIM provisioning."""


@main.command()
@CONFIG_OPTION
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning"]))
@click.option(
    "--log-format",
    default="text",
    type=click.Choice(["text", "json"]),
    help="json: one JSON object per line, for log collectors.",
)
@click.option(
    "--only",
    type=click.Choice(["ldap", "http"]),
    default=None,
    help="Run only the LDAP front or only the HTTP front (default: both).",
)
@click.option(
    "--ready-file",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Once every front listens, write where (JSON: pid and each front's URL, the ports"
    " as bound, so port 0 works) to this file, atomically; it is removed at exit.",
)
def serve(
    config_path: Path | None,
    log_level: str,
    log_format: str,
    only: str | None,
    ready_file: Path | None,
) -> None:
    """Run the gateway. Without --config: a built-in demo directory on SQLite ./idgate.db."""
    from gateway.config import ConfigError
    from gateway.runtime import readyfile
    from gateway.runtime.demo import DemoDirectory, banner
    from gateway.runtime.logs import configure_logging
    from gateway.runtime.main import ListenError, build  # the root pulls in both fronts
    from gateway.runtime.main import serve as run_server
    from store.errors import SchemaOutOfDate

    configure_logging(log_level.upper(), json_lines=log_format == "json")
    demo = DemoDirectory() if config_path is None else None
    if demo is not None:
        try:
            config = demo.config(dict(os.environ))
        except ConfigError as exc:
            click.echo(
                f"configuration errors in the demo (environment overrides?):\n{exc}", err=True
            )
            sys.exit(1)
    else:
        config = _load(config_path)
    try:
        # Without a config file this is a newcomer's first start: create the SQLite schema.
        runtime = build(config, migrate=config_path is None)
    except SchemaOutOfDate as exc:
        click.echo(f"idgate: {exc}", err=True)
        sys.exit(1)

    def started(urls: list[str]) -> None:
        if demo is not None:
            click.echo(banner(urls), err=True)
        if ready_file is not None:
            readyfile.write(ready_file, urls)

    try:
        run_server(runtime, only=only, demo=demo, started=started)
    except ListenError as exc:
        click.echo(f"idgate: {exc}", err=True)
        sys.exit(1)
    finally:
        if ready_file is not None:
            readyfile.remove(ready_file)


@main.group()
def db() -> None:
    """The store's schema."""


@db.command("upgrade")
@CONFIG_OPTION
def db_upgrade(config_path: Path | None) -> None:
    """Bring the schema to this version of idgate (safe to run again)."""
    from store.db import Store
    from store.migrate import current_revision, head_revision, upgrade

    store = Store.connect(_load(config_path).store.url)
    try:
        before = current_revision(store.engine)
        upgrade(store.engine)
        click.echo(f"schema upgraded: {before or 'empty'} -> {head_revision()}")
    finally:
        store.close()


@db.command("check")
@CONFIG_OPTION
def db_check(config_path: Path | None) -> None:
    """Exit 0 when the schema is current, 1 when it needs `idgate db upgrade`."""
    from store.db import Store
    from store.errors import SchemaOutOfDate
    from store.migrate import current_revision, head_revision

    store = Store.connect(_load(config_path).store.url)
    try:
        current, head = current_revision(store.engine), head_revision()
    finally:
        store.close()
    if current != head:
        click.echo(str(SchemaOutOfDate(current, head)), err=True)
        sys.exit(1)
    click.echo(f"schema is current ({head})")


@main.group()
def config() -> None:
    """Configuration files."""


@config.command("check")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def config_check(path: Path) -> None:
    """Validate a configuration file; print every problem as `key: problem`."""
    loaded = _load(path)
    click.echo(f"{path}: valid ({len(loaded.sources)} sources)")


@main.command("hash-secret")
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the secret from standard input.")
@click.option(
    "--generate-token",
    "generate",
    is_flag=True,
    help="Generate a random bearer token, print it once, then its hash for the config.",
)
def hash_secret_cmd(from_stdin: bool, generate: bool) -> None:
    """Print the argon2id hash of a secret, for password_hash / token_hash in the config.

    The secret is read from the terminal, not from the command line (shells keep history).
    """
    from gateway.auth.secrets import generate_token, hash_secret

    if generate:
        token = generate_token()
        click.echo(f"token (give it to the client; it is not stored): {token}", err=True)
        click.echo(hash_secret(token))
        return
    if from_stdin:
        secret = sys.stdin.readline().rstrip("\r\n")
    else:
        secret = click.prompt("secret", hide_input=True, confirmation_prompt=True, err=True)
    if not secret:
        raise click.UsageError("an empty secret cannot be hashed")
    click.echo(hash_secret(secret))


# The admin commands: a client of a running gateway's admin API (gateway/admincli/).
main.add_command(admincli.sync)
main.add_command(admincli.users)
main.add_command(admincli.refresh)
main.add_command(admincli.cleanup)
