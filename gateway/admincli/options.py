"""The options every admin command shares: --url, --token-file, --json; reading the token;
building the client, the console and the `Session` a command is called with."""

import functools
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import httpx
from rich.console import Console

from gateway.admincli.client import AdminClient, AdminError, display_url
from gateway.admincli.session import Session
from gateway.admincli.surroundings import DEFAULT_URL, TOKEN_ENV, URL_ENV, Surroundings

#: The least width of output that is not a terminal.
PIPE_WIDTH = 160

#: Under every group's --help: how the commands reach the gateway.
EPILOG = (
    "These commands talk to a running gateway's admin API: --url (default $IDGATE_URL, else "
    f"{DEFAULT_URL}), the admin token from ${TOKEN_ENV} or --token-file PATH, --json for "
    "scripts. Exit codes: 0 done, 1 refused or failed, 2 usage error."
)


def _read_token(token_file: Path | None) -> str:
    """The admin token: from the file when given, else the environment.

    Raises: click.UsageError (exit 2) when there is none, or it cannot be one; the messages
    name where it came from, never what it holds.
    """
    if token_file is None:
        token = os.environ.get(TOKEN_ENV, "").strip()
        if not token:
            raise click.UsageError(
                f"no admin token: set ${TOKEN_ENV} or pass --token-file PATH"
                " (a file holding the token alone)"
            )
        if not _BEARER.fullmatch(token):
            raise click.UsageError(f"${TOKEN_ENV} {_NOT_A_TOKEN}")
        return token
    try:
        token = token_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise click.BadParameter(
            f"cannot read {token_file}: {reason}", param_hint="--token-file"
        ) from None
    if not token:
        raise click.BadParameter(f"{token_file} is empty", param_hint="--token-file")
    if len(token.split()) != 1:
        raise click.BadParameter(
            f"{token_file} must hold the token alone, on one line", param_hint="--token-file"
        )
    if not _BEARER.fullmatch(token):
        raise click.BadParameter(f"{token_file} {_NOT_A_TOKEN}", param_hint="--token-file")
    return token


#: What an Authorization header can carry: visible ASCII (RFC 9110 §5.5). Looser than
#: RFC 6750's token68 on purpose: the gateway, not the CLI, decides what it accepts.
_BEARER = re.compile(r"[\x21-\x7e]+")
_NOT_A_TOKEN = "holds characters an HTTP header cannot carry (visible ASCII only)"  # noqa: S105


def _check_url(url: str) -> str:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise click.BadParameter(
            f"{display_url(url)} is not an http:// or https:// URL with a host",
            param_hint="--url",
        )
    return url


def api_command(command: Callable[..., None]) -> Callable[..., None]:
    """Add --url, --token-file and --json to a command; it is called with a `Session`
    first, and an `AdminError` it lets out is reported (exit 1)."""

    @functools.wraps(command)
    def run(url: str, token_file: Path | None, as_json: bool, **arguments: Any) -> None:
        context = click.get_current_context()
        world = context.find_object(Surroundings) or Surroundings()
        token = _read_token(token_file)
        client = AdminClient(
            _check_url(url),
            token,
            timeout=world.timeout_seconds,
            transport=world.transport,
        )
        console = (
            Console(highlight=False)
            if world.interactive is None
            else Console(
                highlight=False,
                force_terminal=world.interactive,
                force_interactive=world.interactive,
            )
        )
        if not console.is_terminal:
            # A pipe or a log has no width to respect: tables keep their natural width.
            console.width = max(console.width, PIPE_WIDTH)
        session = Session(client, console, as_json, world)
        with client:
            try:
                command(session, **arguments)
            except AdminError as error:
                session.fail(error)

    options = [
        click.option(
            "--url",
            envvar=URL_ENV,
            default=DEFAULT_URL,
            show_default=True,
            show_envvar=True,
            help="The gateway's HTTP front.",
        ),
        click.option(
            "--token-file",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help=f"A file holding the admin token (else ${TOKEN_ENV}). There is no --token: "
            "a token on the command line stays in the shell's history and in `ps`.",
        ),
        click.option(
            "--json",
            "as_json",
            is_flag=True,
            help="Print the API's JSON document alone, for scripts.",
        ),
    ]
    for option in reversed(options):
        run = option(run)
    return run
