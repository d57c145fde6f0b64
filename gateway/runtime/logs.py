"""Logging setup: plain text for people, JSON lines for collectors (SPEC §8).

Records carry their context as `extra` fields (peer, bind name, result); the JSON formatter
writes them as keys. Nothing here ever sees a password: the LDAP front logs names and
outcomes, never requests (ldaptor's bind request `repr` would print the password).
"""

import json
import logging
from datetime import UTC, datetime
from typing import Any

# The attributes every LogRecord has; anything else on a record came in through `extra`.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


# json.dumps escapes C0 controls but leaves NEL and the Unicode line and paragraph
# separators raw; readers that split on every line break (Python's splitlines, many log
# shippers) would cut a record holding a client's text in two. JSON may escape any character.
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


class JsonLines(logging.Formatter):
    """One JSON object per line, whatever text the record carries."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False).translate(_LINE_BREAKS)


class TextWithContext(logging.Formatter):
    """`time level logger message key=value ...`"""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extra = [
            f"{key}={value}"
            for key, value in record.__dict__.items()
            if key not in _STANDARD and not key.startswith("_")
        ]
        return f"{text} {' '.join(extra)}" if extra else text


def configure_logging(level: str, *, json_lines: bool) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonLines()
        if json_lines
        else TextWithContext("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # alembic logs at INFO each time the readiness probe reads the schema revision.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # httpx logs every request's full URL at INFO: a webhook URL often carries a credential
    # (user:password, a token in its path or query). gateway.jobs.notify logs a redacted one.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    # Twisted's own log goes to the standard library's (it never sees request contents: the
    # front does not enable ldaptor's debug output, which prints requests).
    from twisted.logger import STDLibLogObserver, globalLogBeginner

    observer: Any = STDLibLogObserver()
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
