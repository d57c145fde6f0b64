"""Reading the configuration: `load_config` for a TOML file, `parse_config` for its data.

`parse_config` substitutes ``${NAME}``, applies ``IDGATE_*`` overrides, validates into a
`Config` and checks references across sections, then reports every problem in one
`ConfigError`.
"""

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gateway.config.environment import apply_overrides, substitute
from gateway.config.errors import ConfigError, ConfigIssue
from gateway.config.keys import dotted_key
from gateway.config.model import Config
from gateway.config.references import cross_reference_issues
from gateway.config.reporting import validation_issues


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, resolve and validate a TOML configuration file.

    Args:
        path: the file. Relative paths inside it (TLS files, a SQLite database) are read
            relative to the file's directory.
        environ: the environment for ``${NAME}`` and ``IDGATE_*`` overrides; None is an
            empty environment. Only the CLI passes ``os.environ``.

    Raises:
        ConfigError: the file cannot be read, is not valid TOML (one issue with line and
            column), or holds invalid settings (one issue per problem).
    """
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(path), f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise ConfigError([ConfigIssue(str(path), "is not UTF-8 text (TOML is UTF-8)")]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigIssue(str(path), _toml_message(exc, text))]) from None
    return parse_config(data, environ, base_dir=path.parent.resolve())


def _toml_message(exc: tomllib.TOMLDecodeError, text: str) -> str:
    message = str(exc)
    where = re.search(r" \(at line (\d+), column (\d+)\)$", message)
    if where:
        what = message[: where.start()]
        return f"invalid TOML at line {where[1]}, column {where[2]}: {what}"
    if message.endswith(" (at end of document)"):
        what = message.removesuffix(" (at end of document)")
        return f"invalid TOML at the end of the file (line {text.count(chr(10)) + 1}): {what}"
    return f"invalid TOML: {message}"


def parse_config(
    data: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    *,
    base_dir: Path | None = None,
) -> Config:
    """Validate configuration data (a parsed TOML document) into a `Config`.

    Args:
        data: the document; it is not modified.
        environ: the environment for ``${NAME}`` and ``IDGATE_*`` overrides; None is an
            empty environment.
        base_dir: what relative paths are relative to; the current directory when None.

    Raises:
        ConfigError: with every problem found (substitution, overrides, values, references).
    """
    env: Mapping[str, str] = environ if environ is not None else {}
    if not isinstance(data, Mapping):
        raise ConfigError([ConfigIssue("(config)", "must be a table")])
    raw_issues: list[tuple[tuple[str | int, ...], str]] = []
    raw = substitute(data, env, (), raw_issues)
    origins = apply_overrides(raw, env, raw_issues)
    for section in ("store", "http", "ldap", "sync"):
        # Validate defaults too, so that default paths resolve against base_dir.
        raw.setdefault(section, {})
    issues = [ConfigIssue(dotted_key(loc, raw), message) for loc, message in raw_issues]
    context = {"base_dir": base_dir if base_dir is not None else Path.cwd()}
    try:
        config = Config.model_validate(raw, context=context)
    except ValidationError as exc:
        # A failed ${NAME} left an empty string behind: one problem, one issue.
        unresolved = {issue.key for issue in issues}
        issues += [i for i in validation_issues(exc, raw, origins) if i.key not in unresolved]
        # The model's own reference checks only run when every field is valid; run them
        # on the raw data so that all problems are reported at once.
        issues += cross_reference_issues(raw)
        raise ConfigError(issues) from None
    if issues:
        raise ConfigError(issues)
    return config
