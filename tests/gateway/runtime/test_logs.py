"""JSON log lines stay one record per line whatever text a client put in them (SPEC §8)."""

import json
import logging

import pytest

from gateway.runtime.logs import JsonLines

#: Every character some reader takes for a line break (str.splitlines), and NUL.
BREAKS = ["\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\x00"]


@pytest.mark.parametrize("character", BREAKS, ids=[f"U+{ord(c):04X}" for c in BREAKS])
def test_a_client_text_never_breaks_a_json_line(character: str) -> None:
    name = f"alice{character}bob"
    record = logging.makeLogRecord({"msg": "ldap bind", "bind_name": name, "levelname": "INFO"})

    line = JsonLines().format(record)

    assert line.splitlines() == [line]
    assert json.loads(line)["bind_name"] == name
