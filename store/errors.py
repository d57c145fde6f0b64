"""Errors of the store layer. Messages are safe to show an operator (no URL credentials)."""


class StoreError(Exception):
    pass


class SchemaOutOfDate(StoreError):
    def __init__(self, current: str | None, head: str) -> None:
        have = current or "empty (no tables)"
        super().__init__(
            f"the database schema is at revision {have}, this idgate needs {head}: "
            "run `idgate db upgrade` with the same --config, then start again"
        )
        self.current = current
        self.head = head
