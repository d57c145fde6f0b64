"""The log of changed bind records (`user_changes`), filled by triggers, and its queries.

What is logged (one row per changed user id):
- an insert or a delete of a user;
- an update that changes a column a bind reads (`BIND_COLUMNS`): not the JIT claim
  (`sync_claim_until`), nor `last_auth_at`, nor the profile, so claims and last-auth writes
  cost no reader anything;
- a failed bind counted against a stored user (an `auth_failures` row whose key is a user id).

The triggers trim the log to the newest `KEEP` rows. On PostgreSQL they also record the
writing transaction (`txid_current()`) and notify `CHANNEL` with "<txid>:<user id>".

The trigger DDL is versioned (`create_triggers_v1`): a migration calls the version of its day,
so a later change to the triggers is a new version and a new migration, never an edit.
"""

from sqlalchemy import Connection, text

#: The NOTIFY channel of PostgreSQL's triggers.
CHANNEL = "idgate_user_changes"
#: How many rows of the log the triggers keep: a reader further behind starts afresh.
KEEP = 50_000
#: On PostgreSQL, one insert in this many trims the log: concurrent writers trimming the same
#: rows would wait on each other's row locks.
TRIM_EVERY = 1000

#: The columns of `users` that a bind reads, or that find it (`store.users.bind_record`).
BIND_COLUMNS = (
    "id", "source_id", "external_id", "user_name", "user_name_key", "dn", "dn_key", "upn_key",
    "status", "source_status", "disabled_by", "reason", "pending_deletion_since",
    "last_sync_at", "password_hash",
)  # fmt: skip

_TRIGGERS = {
    "idgate_users_insert": "users",
    "idgate_users_delete": "users",  # SQLite only: PostgreSQL's insert trigger covers deletes
    "idgate_users_update": "users",
    "idgate_failures_insert": "auth_failures",
}
_PG_FUNCTIONS = ("idgate_users_changed()", "idgate_failure_changed()", "idgate_user_changed(text)")


def create_triggers_v1(connection: Connection, *, keep: int = KEEP) -> None:
    """Create the triggers that fill `user_changes` (migration 0007)."""
    statements = _pg_v1(keep) if connection.dialect.name == "postgresql" else _sqlite_v1(keep)
    for statement in statements:
        connection.exec_driver_sql(statement)


def drop_triggers_v1(connection: Connection) -> None:
    postgresql = connection.dialect.name == "postgresql"
    for name, table in _TRIGGERS.items():
        connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" * postgresql))
    if postgresql:
        for function in _PG_FUNCTIONS:
            connection.exec_driver_sql(f"DROP FUNCTION IF EXISTS {function}")


def _changed(new: str, old: str) -> str:
    return " OR ".join(f"{new}.{c} IS DISTINCT FROM {old}.{c}" for c in BIND_COLUMNS)


def _sqlite_v1(keep: int) -> list[str]:
    # SQLite serialises writers, so trimming at every insert costs one b-tree seek and never
    # waits; `IS NOT` is SQLite's IS DISTINCT FROM. DDL takes no bound parameters: the only
    # values formatted into it are integers and this module's constants.
    newest = "(SELECT max(seq) FROM user_changes)"
    trim = f"DELETE FROM user_changes WHERE seq <= {newest} - {int(keep)};"  # noqa: S608
    log = "INSERT INTO user_changes (user_id) VALUES ({});"
    columns = ", ".join(BIND_COLUMNS)
    changed = _changed("NEW", "OLD").replace("IS DISTINCT FROM", "IS NOT")
    return [
        "CREATE TRIGGER idgate_users_insert AFTER INSERT ON users BEGIN "
        f"{log.format('NEW.id')} {trim} END",
        "CREATE TRIGGER idgate_users_delete AFTER DELETE ON users BEGIN "
        f"{log.format('OLD.id')} {trim} END",
        f"CREATE TRIGGER idgate_users_update AFTER UPDATE OF {columns} ON users "
        f"WHEN {changed} BEGIN {log.format('OLD.id')} "
        "INSERT INTO user_changes (user_id) SELECT NEW.id WHERE NEW.id IS NOT OLD.id; "
        f"{trim} END",
        "CREATE TRIGGER idgate_failures_insert AFTER INSERT ON auth_failures BEGIN "  # noqa: S608
        "INSERT INTO user_changes (user_id) SELECT id FROM users WHERE id = NEW.key; "
        f"{trim} END",
    ]


def _pg_v1(keep: int) -> list[str]:
    columns = ", ".join(BIND_COLUMNS)
    return [
        f"""CREATE FUNCTION idgate_user_changed(changed text) RETURNS void
        LANGUAGE plpgsql AS $$
        DECLARE
            logged bigint;
        BEGIN
            INSERT INTO user_changes (user_id, txid) VALUES (changed, txid_current())
                RETURNING seq INTO logged;
            IF mod(logged, {TRIM_EVERY}) = 0 THEN
                DELETE FROM user_changes WHERE seq <= logged - {int(keep)};
            END IF;
            PERFORM pg_notify('{CHANNEL}', txid_current() || ':' || changed);
        END $$""",  # noqa: S608
        """CREATE FUNCTION idgate_users_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'INSERT' THEN
                PERFORM idgate_user_changed(OLD.id);
            END IF;
            IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.id IS DISTINCT FROM OLD.id) THEN
                PERFORM idgate_user_changed(NEW.id);
            END IF;
            RETURN NULL;
        END $$""",
        """CREATE FUNCTION idgate_failure_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF EXISTS (SELECT 1 FROM users WHERE id = NEW.key) THEN
                PERFORM idgate_user_changed(NEW.key);
            END IF;
            RETURN NULL;
        END $$""",
        "CREATE TRIGGER idgate_users_insert AFTER INSERT OR DELETE ON users "
        "FOR EACH ROW EXECUTE FUNCTION idgate_users_changed()",
        f"CREATE TRIGGER idgate_users_update AFTER UPDATE OF {columns} ON users "
        f"FOR EACH ROW WHEN ({_changed('NEW', 'OLD')}) EXECUTE FUNCTION idgate_users_changed()",
        "CREATE TRIGGER idgate_failures_insert AFTER INSERT ON auth_failures "
        "FOR EACH ROW EXECUTE FUNCTION idgate_failure_changed()",
    ]


# -- reading the log ------------------------------------------------------------------------

#: SQLite, on a DB-API connection: the changes after a seq, oldest first, as (seq, user id).
SQLITE_CHANGES_AFTER = "SELECT seq, user_id FROM user_changes WHERE seq > ? ORDER BY seq"
SQLITE_LAST_SEQ = "SELECT coalesce(max(seq), 0) FROM user_changes"

_SQLITE_OWN = text("SELECT seq, user_id FROM user_changes WHERE seq > :after ORDER BY seq")


def sqlite_own_changes(connection: Connection, committed: int) -> list[tuple[int, str]]:
    """SQLite: the log rows of the writing transaction open on `connection`, as (seq, user
    id). `committed` is the last seq committed when it is asked (read on another connection):
    the transaction holds the write lock (BEGIN IMMEDIATE), so every row after it is its own."""
    return [(row[0], row[1]) for row in connection.execute(_SQLITE_OWN, {"after": committed})]


_OWN = text("SELECT txid, user_id FROM user_changes WHERE txid = txid_current_if_assigned()")


def own_changes(connection: Connection) -> tuple[int | None, list[str]]:
    """PostgreSQL: the transaction open on `connection` and the users it changed so far
    (none when it wrote nothing: no transaction id is assigned then)."""
    rows = connection.execute(_OWN).all()
    return (rows[0][0] if rows else None), [row[1] for row in rows]


def parse_notice(payload: str) -> tuple[int, str]:
    """A notification of `CHANNEL`: (txid, user id)."""
    txid, _, user_id = payload.partition(":")
    return int(txid), user_id
