"""The LDAP front's listeners: plain LDAP (offering StartTLS when a certificate is set) and
LDAPS (RFC 4513 §3), on a Twisted reactor the composition root hands in."""

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from OpenSSL import SSL
from twisted.internet import defer

from gateway.config import LdapConfig
from ldapproxy.server import LdapFactory, Services

log = logging.getLogger("idgate.ldap")


class ServerTls:
    """The front's TLS context (an old-style Twisted context factory): the certificate chain
    and key from PEM files, TLS 1.2 or newer."""

    def __init__(self, cert: Path, key: Path) -> None:
        context = SSL.Context(SSL.TLS_SERVER_METHOD)
        context.set_min_proto_version(SSL.TLS1_2_VERSION)
        context.use_certificate_chain_file(str(cert))
        context.use_privatekey_file(str(key))
        context.check_privatekey()
        self._context = context

    def getContext(self) -> SSL.Context:
        return self._context


@dataclass
class Listeners:
    """The listening ports and their factories, for the addresses they got and for shutdown."""

    ports: list[Any] = field(default_factory=list)
    factories: list[LdapFactory] = field(default_factory=list)

    def addresses(self) -> list[tuple[str, str, int]]:
        """(scheme, host, port) of each listener, ports as bound (a configured 0 is real)."""
        found = []
        for port, factory in zip(self.ports, self.factories, strict=True):
            address = port.getHost()
            found.append(("ldaps" if factory.tls else "ldap", address.host, address.port))
        return found

    async def close(self, grace_seconds: float = 5.0) -> None:
        """Stop accepting, then close every connection (after `grace_seconds` at most for
        operations in progress to answer)."""
        loop = asyncio.get_running_loop()
        stopped = defer.gatherResults([defer.maybeDeferred(p.stopListening) for p in self.ports])
        await stopped.asFuture(loop)
        deadline = loop.time() + grace_seconds
        while loop.time() < deadline and any(c.busy for f in self.factories for c in f.connections):
            await asyncio.sleep(0.05)
        for factory in self.factories:
            for connection in list(factory.connections):
                connection.close()


def tls_of(config: LdapConfig) -> ServerTls | None:
    if config.tls_cert is None or config.tls_key is None:
        return None
    return ServerTls(config.tls_cert, config.tls_key)


def listen(reactor: Any, services: Services, config: LdapConfig) -> Listeners:
    """Start the listeners of `config` on `reactor`."""
    listeners = Listeners()
    plain = LdapFactory(services)
    listeners.ports.append(
        reactor.listenTCP(config.listen.port, plain, interface=config.listen.host, backlog=128)
    )
    listeners.factories.append(plain)
    if config.ldaps_listen is not None and services.tls_context is not None:
        secure = LdapFactory(services, tls=True)
        address = config.ldaps_listen
        listeners.ports.append(
            reactor.listenSSL(
                address.port, secure, services.tls_context, interface=address.host, backlog=128
            )
        )
        listeners.factories.append(secure)
    return listeners
