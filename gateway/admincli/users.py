"""`idgate users show | sync | disable | enable`: one user, found by name or id."""

from collections.abc import Callable

import click
from rich.text import Text

from gateway.admincli.client import AdminError, JsonObject
from gateway.admincli.options import EPILOG, api_command
from gateway.admincli.render import user_card, user_line
from gateway.admincli.session import Session, local_error


def find_user(
    session: Session,
    name: str | None,
    source: str | None,
    user_id: str | None,
    *,
    include_unsynchronized: bool = False,
) -> JsonObject:
    """The user named NAME in --source, or the one with --id.

    Raises: click.UsageError (neither or both given); AdminError `not_found`.
    """
    if user_id is not None:
        if name is not None:
            raise click.UsageError("give NAME (with --source) or --id ID, not both")
        return session.client.user(user_id)
    if name is None:
        raise click.UsageError("give a user NAME (with --source) or --id ID")
    if source is None:
        raise click.UsageError("--source is required with a user NAME")
    found = session.client.find_users(
        source, name, include_unsynchronized=include_unsynchronized
    ).get("users")
    if not found:
        hint = "" if include_unsynchronized else " (not synchronized yet? --include-unsynchronized)"
        raise local_error("not_found", f"no user {name!r} in source {source}{hint}")
    user: JsonObject = found[0]
    return user


def user_options(command: Callable[..., None]) -> Callable[..., None]:
    command = click.option("--id", "user_id", default=None, help="The user's id, not its name.")(
        command
    )
    command = click.option("--source", default=None, help="The user's source (with NAME).")(command)
    return click.argument("name", required=False)(command)


@click.group(epilog=EPILOG)
def users() -> None:
    """One user: view, sync now, disable, enable (SPEC §4.4, §5.2)."""


@users.command("show")
@user_options
@click.option(
    "--include-unsynchronized",
    is_flag=True,
    help="Look a user not yet in the store up in the directory (this adds them).",
)
@api_command
def users_show(
    session: Session,
    name: str | None,
    source: str | None,
    user_id: str | None,
    include_unsynchronized: bool,
) -> None:
    """Show user NAME of --source (or --id ID)."""
    user = find_user(session, name, source, user_id, include_unsynchronized=include_unsynchronized)
    session.emit(user, lambda: session.console.print(user_card(user)))


@users.command("sync")
@user_options
@api_command
def users_sync(session: Session, name: str | None, source: str | None, user_id: str | None) -> None:
    """Sync one user from the directory now (no throttle); adds one not yet in the store."""
    try:
        user = find_user(session, name, source, user_id)
    except AdminError as error:
        if error.code != "not_found" or user_id is not None:
            raise
        user = find_user(session, name, source, None, include_unsynchronized=True)
    answer = session.client.sync_user(str(user["id"]))

    def render() -> None:
        synced = answer.get("user")
        outcome = Text(f"sync: {answer.get('outcome')}", style="bold")
        if synced is None:
            session.console.print(outcome, Text(" - the record is gone"))
        else:
            session.console.print(outcome)
            session.console.print(user_line(synced))

    session.emit(answer, render)


def _user_action(session: Session, action: str, user: JsonObject, comment: str | None) -> None:
    client = session.client
    call = client.disable_user if action == "disable" else client.enable_user
    updated = call(str(user["id"]), comment)
    session.emit(updated, lambda: session.console.print(user_line(updated)))


COMMENT_OPTION = click.option("--comment", default=None, help="Why, for the audit log (SPEC §8).")


@users.command("disable")
@user_options
@COMMENT_OPTION
@api_command
def users_disable(
    session: Session,
    name: str | None,
    source: str | None,
    user_id: str | None,
    comment: str | None,
) -> None:
    """Disable a user: it stays disabled whatever the directory says, until enabled."""
    _user_action(session, "disable", find_user(session, name, source, user_id), comment)


@users.command("enable")
@user_options
@COMMENT_OPTION
@api_command
def users_enable(
    session: Session,
    name: str | None,
    source: str | None,
    user_id: str | None,
    comment: str | None,
) -> None:
    """Re-enable a user an administrator or the cleanup disabled.

    Refused (exit 1, with the reason) while the source reports the user disabled, expired
    or missing.
    """
    _user_action(session, "enable", find_user(session, name, source, user_id), comment)
