"""Certificate verification for ldaps:// and StartTLS (SPEC §2: upstream TLS is verified).

The chain is verified by OpenSSL against the source's ``ca_file`` (or the system CAs). The
name is checked here, after the handshake, against the expected names: the source's
``tls_server_names`` when set, else the URL's host. ldap3's own check is not used because it
always accepts the URL's host as well, so a configured name could not narrow it. Host names
match the certificate's DNS subjectAltNames, or its subject CN only when it has none (RFC 6125
§6.4.4, as OpenSSL and Python do: Samba's generated certificates carry no SAN); a ``*`` only as
the whole leftmost label (§6.4.3). IP addresses match iPAddress entries only.
"""

import ipaddress
import ssl
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import ldap3

from gateway.directory.errors import TlsNameMismatch

__all__ = ["VerifyingTls", "certificate_matches", "client_context", "is_address"]


def client_context(ca_file: Path | None) -> ssl.SSLContext:
    """A client context: TLS 1.2 or later, chain verified, name checked by `VerifyingTls`."""
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=str(ca_file) if ca_file else None
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False  # done by VerifyingTls against the expected names
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class VerifyingTls(ldap3.Tls):  # type: ignore[misc]  # ldap3 is untyped
    """ldap3's Tls, wrapping with our context and checking our names after the handshake."""

    def __init__(self, context: ssl.SSLContext, names: tuple[str, ...]) -> None:
        super().__init__(validate=ssl.CERT_REQUIRED)
        self._context = context
        self._names = names
        # SNI carries a host name, never an address (RFC 6066 §3).
        self._sni = next((n for n in names if not is_address(n)), None)

    def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:
        # The handshake is done here whatever ldap3 asks: the name check needs the certificate.
        del do_handshake
        wrapped = self._context.wrap_socket(
            connection.socket, server_side=False, server_hostname=self._sni
        )
        try:
            certificate = wrapped.getpeercert()
            if not certificate or not certificate_matches(certificate, self._names):
                raise TlsNameMismatch("certificate does not name an expected host")
        except BaseException:
            wrapped.close()
            raise
        connection.socket = wrapped


def certificate_matches(certificate: dict[str, Any], names: Iterable[str]) -> bool:
    """Whether a verified peer certificate (``SSLSocket.getpeercert()``) names one of `names`."""
    entries: list[tuple[str, str]] = list(certificate.get("subjectAltName", ()))
    if not any(kind == "DNS" for kind, _ in entries):
        entries += [
            ("DNS", value)
            for rdn in certificate.get("subject", ())
            for key, value in rdn
            if key == "commonName"
        ]
    return any(_matches(entries, name) for name in names)


def _matches(entries: list[tuple[str, str]], name: str) -> bool:
    if is_address(name):
        wanted = ipaddress.ip_address(name)
        return any(kind == "IP Address" and _address(value) == wanted for kind, value in entries)
    host = name.rstrip(".").casefold()
    for kind, value in entries:
        if kind != "DNS":
            continue
        pattern = value.rstrip(".").casefold()
        if pattern == host:
            return True
        label, dot, rest = host.partition(".")
        # "*.example.org" covers "a.example.org", not "example.org" nor "a.b.example.org".
        if pattern.startswith("*.") and dot and label and "." in rest and pattern[2:] == rest:
            return True
    return False


def is_address(name: str) -> bool:
    """Whether `name` is an IP address rather than a host name."""
    return _address(name) is not None


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None
