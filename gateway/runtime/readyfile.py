"""`idgate serve --ready-file PATH`: where the fronts listen, for supervisors and tests.

Written once every front listens, atomically (a temporary file renamed over PATH, so a
reader never sees half a document), and removed when the gateway stops. With port 0 in
`http.listen`, `ldap.listen` or `ldap.ldaps_listen` the OS picks a free port; this file is
how whoever started the gateway learns it:

    {"pid": 4242, "ldap": "ldap://127.0.0.1:39211", "ldaps": null,
     "http": "http://127.0.0.1:41877", "urls": ["ldap://127.0.0.1:39211", ...]}
"""

import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["remove", "write"]

_SCHEMES = ("ldap", "ldaps", "http")


def document(urls: Sequence[str], pid: int) -> dict[str, object]:
    """The ready file's content: the first listener of each scheme, and every URL."""
    first = {
        scheme: next((u for u in urls if u.startswith(f"{scheme}://")), None) for scheme in _SCHEMES
    }
    return {"pid": pid, **first, "urls": list(urls)}


def write(path: Path, urls: Sequence[str], pid: int | None = None) -> None:
    """Write the ready file atomically (readers see the old file, none, or the whole new one)."""
    text = json.dumps(document(urls, os.getpid() if pid is None else pid), indent=2) + "\n"
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
