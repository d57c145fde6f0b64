"""A network namespace of its own for each Samba DC, joined to ours by a veth pair.

Samba's LDAP ports are fixed (389/636, and 3268/3269 for the global catalog), so two DCs
cannot share an address. Each gets a random /30 of NETWORK_POOL (10.231.0.0/16): the host
side is .1, the DC .2. These addresses exist only on this machine.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import subprocess
from pathlib import Path

from tests.servers.samba_install import SambaError, SambaUnavailable, run
from tests.servers.samba_leftovers import NAME_PREFIX

__all__ = ["NETWORK_POOL", "NetworkNamespace", "free_network"]

# Where every namespace's /30 comes from: 16384 of them, picked at random per server.
NETWORK_POOL = ipaddress.IPv4Network("10.231.0.0/16")


class NetworkNamespace:
    """A network namespace joined to ours by a veth pair on a random /30 of NETWORK_POOL:
    `host_address` (.1) is on our side, `address` (.2) inside, where the DC listens."""

    def __init__(self, ip: Path) -> None:
        token = secrets.token_hex(4)
        # The pid lets a later run recognise namespaces of a run that was SIGKILLed.
        self.name = f"{NAME_PREFIX}{os.getpid()}-{token}"
        self.host_interface = f"idgs{token}"  # Linux interface names: at most 15 characters
        self._ip = str(ip)
        self._network: ipaddress.IPv4Network | None = None
        self._created = False

    @property
    def network(self) -> ipaddress.IPv4Network:
        if self._network is None:
            raise SambaError(f"namespace {self.name} not created")
        return self._network

    @property
    def host_address(self) -> str:
        return str(self.network.network_address + 1)

    @property
    def address(self) -> str:
        return str(self.network.network_address + 2)

    def exec_prefix(self) -> list[str]:
        """The argv prefix that runs a command inside the namespace."""
        return [self._ip, "netns", "exec", self.name]

    def create(self) -> None:
        """Create the namespace and the veth pair, address both ends, bring links up.

        Raises: SambaUnavailable when namespaces cannot be made here (not root, no
        CAP_SYS_ADMIN/CAP_NET_ADMIN); SambaError when a later step fails.
        """
        completed = self._run("netns", "add", self.name, check=False)
        if completed.returncode != 0:
            raise SambaUnavailable(
                "cannot create a network namespace for Samba AD (needs root:"
                f" CAP_SYS_ADMIN and CAP_NET_ADMIN): {completed.stderr.strip()}"
            )
        self._created = True
        try:
            addresses = self._run("-j", "-4", "addr", "show").stdout
            routes = self._run("-j", "-4", "route", "show", "table", "all").stdout
            self._network = free_network(addresses, routes)
            prefix = self.network.prefixlen
            self._run("link", "add", self.host_interface, "type", "veth",
                      "peer", "name", "eth0", "netns", self.name)  # fmt: skip
            self._run("addr", "add", f"{self.host_address}/{prefix}", "dev", self.host_interface)
            self._run("link", "set", self.host_interface, "up")
            self._run("-n", self.name, "addr", "add", f"{self.address}/{prefix}", "dev", "eth0")
            self._run("-n", self.name, "link", "set", "eth0", "up")
            self._run("-n", self.name, "link", "set", "lo", "up")
        except BaseException:
            self.destroy()
            raise

    def destroy(self) -> None:
        """Delete the namespace (which takes its veth end, and so the pair, with it) and,
        should it remain, our end. Idempotent; never raises."""
        if not self._created:
            return
        self._run("netns", "delete", self.name, check=False)
        with contextlib.suppress(OSError):
            if Path("/sys/class/net", self.host_interface).exists():
                self._run("link", "delete", self.host_interface, check=False)
        self._created = False

    def exists(self) -> bool:
        return Path("/run/netns", self.name).exists()

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([self._ip, *args], check=check)


def free_network(addr_json: str, route_json: str) -> ipaddress.IPv4Network:
    """A random /30 of NETWORK_POOL that no address or route of this host overlaps."""
    taken: list[ipaddress.IPv4Network] = []
    for link in json.loads(addr_json or "[]"):
        for info in link.get("addr_info", []):
            with contextlib.suppress(KeyError, ValueError):
                taken.append(
                    ipaddress.IPv4Network(f"{info['local']}/{info['prefixlen']}", strict=False)
                )
    for route in json.loads(route_json or "[]"):
        destination = route.get("dst", "default")
        if destination != "default":
            with contextlib.suppress(ValueError):
                taken.append(ipaddress.IPv4Network(destination, strict=False))
    subnets = NETWORK_POOL.num_addresses // 4
    for _ in range(100):
        first = NETWORK_POOL.network_address + 4 * secrets.randbelow(subnets)
        candidate = ipaddress.IPv4Network(f"{first}/30")
        if not any(candidate.overlaps(network) for network in taken):
            return candidate
    raise SambaError(f"no free /30 in {NETWORK_POOL}: this host's routes cover it")
