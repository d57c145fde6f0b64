"""Listen addresses (``host:port``, ``[::1]:port``) and whether two of them collide."""

from collections.abc import Mapping
from ipaddress import IPv6Address
from typing import Any

from pydantic import Field, model_validator

from gateway.config.checks import hostname
from gateway.config.fields import HostName, Integer, Model


class ListenAddress(Model):
    """A ``host:port`` to listen on; IPv6 hosts in brackets (``[::1]:8080``).

    ``host`` is kept without brackets. Port 0 asks the OS for any free port (tests).
    """

    host: HostName
    port: Integer = Field(ge=0, le=65535)

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        return _parse_listen(data) if isinstance(data, str) else data

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _parse_listen(text: str) -> dict[str, Any]:
    usage = "must be HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080"
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise ValueError(usage)
        try:
            IPv6Address(host)
        except ValueError:
            raise ValueError("must hold an IPv6 address between the brackets") from None
    else:
        host, sep, port = text.rpartition(":")
        if not sep or not host:
            raise ValueError(usage)
        if ":" in host:
            raise ValueError("IPv6 addresses go in brackets, e.g. [::1]:8080")
        hostname(host)
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("port must be a number from 0 to 65535")
    return {"host": host, "port": int(port)}


def same_address(a: Any, b: Any) -> bool:
    """Whether two listen addresses (ListenAddress, dump dict or text) collide; port 0 never."""
    pa, pb = _listen_pair(a), _listen_pair(b)
    return pa is not None and pa == pb and pa[1] != 0


def _listen_pair(value: Any) -> tuple[str, int] | None:
    try:
        if isinstance(value, ListenAddress):
            return value.host.lower(), value.port
        if isinstance(value, str):
            parsed = _parse_listen(value)
            return str(parsed["host"]).lower(), int(parsed["port"])
        if isinstance(value, Mapping):
            return str(value["host"]).lower(), int(value["port"])
    except (ValueError, KeyError, TypeError):
        return None
    return None
