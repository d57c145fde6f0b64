"""How the configuration reports problems: `ConfigIssue`s, gathered into one `ConfigError`."""

from collections.abc import Iterable
from dataclasses import dataclass

from pydantic_core import PydanticCustomError


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in the configuration.

    Attributes:
        key: where, as a dotted path (``sources.corp.urls[1]``), an environment variable name
            for a malformed override, or the file's path for a file that cannot be read.
        message: what is wrong; never contains a configured string value.
    """

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class ConfigError(Exception):
    """The configuration is invalid; `issues` lists every problem, in file order."""

    def __init__(self, issues: Iterable[ConfigIssue]) -> None:
        unique = list(dict.fromkeys(issues))
        super().__init__("\n".join(str(issue) for issue in unique))
        self.issues: list[ConfigIssue] = unique


def sibling_error(field: str, message: str) -> PydanticCustomError:
    """An error a field validator reports against a sibling field (``field``) instead."""
    return PydanticCustomError("idgate_sibling", "{message}", {"field": field, "message": message})
