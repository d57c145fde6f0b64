"""The session a command runs in: client, console, output mode; how errors are reported."""

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

import click
from rich.console import Console

from gateway.admincli.client import AdminClient, AdminError, JsonObject
from gateway.admincli.surroundings import TOKEN_ENV, Surroundings


@dataclass
class Session:
    client: AdminClient
    console: Console
    as_json: bool
    world: Surroundings

    def emit(self, document: JsonObject, render: Callable[[], None]) -> None:
        """The API's document (--json), or its rendering."""
        if self.as_json:
            click.echo(json.dumps(document, indent=2, ensure_ascii=False))
        else:
            render()

    def fail(self, error: AdminError) -> NoReturn:
        """Report an error the way the output mode asks, and exit 1."""
        if self.as_json:
            click.echo(json.dumps(error.document(), indent=2, ensure_ascii=False))
        click.echo(f"idgate: {describe(error)}", err=True)
        for hint in hints(error):
            click.echo(f"  {hint}", err=True)
        sys.exit(1)


def local_error(code: str, detail: str) -> AdminError:
    """A refusal the CLI itself concludes from the API's answers (status 0: the gateway
    answered 200, the CLI found nothing to act on)."""
    return AdminError(0, code, detail)


def describe(error: AdminError) -> str:
    where = f", field {error.field}" if error.field else ""
    status = f", HTTP {error.status}" if error.status else ""
    return f"{error.detail} ({error.code}{status}{where})"


def hints(error: AdminError) -> list[str]:
    """What to do next, for the errors an operator meets most."""
    if error.code == "enable_refused" and error.extra.get("source_status"):
        return [f"source status: {error.extra['source_status']}"]
    if error.code == "job_running" and error.extra.get("job") is not None:
        return [f"follow it: idgate sync status --job {error.extra['job']}"]
    if error.code == "unauthorized":
        return [f"check the token (${TOKEN_ENV} or --token-file): it is not an admin token"]
    if error.code == "forbidden":
        return ["this needs another role (SPEC §4.4: jobs and sources are super_admin's)"]
    return []
