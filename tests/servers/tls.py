"""Throwaway TLS material made with the `openssl` CLI: one CA and one server certificate.

The server certificate names `localhost` and `127.0.0.1` (SAN), so clients verify it whether
they dial the name or the address. Nothing here imports pytest: benchmarks use it too.
"""

from __future__ import annotations

import atexit
import secrets
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

CA_SUBJECT = "/CN=idgate throwaway test CA"
SERVER_HOSTNAME = "localhost"
SERVER_IP = "127.0.0.1"

# Extensions of the server certificate. Python's ssl (OpenSSL 3) and slapd's GnuTLS both
# check SAN, key usage and the key identifiers, so all are set explicitly.
_SERVER_EXTENSIONS = f"""\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:{SERVER_HOSTNAME}, IP:{SERVER_IP}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

# P-256 keys: generated in milliseconds, unlike RSA, and accepted by GnuTLS and OpenSSL.
_NEW_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


class TlsError(RuntimeError):
    """The `openssl` CLI is missing or failed."""


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: the CA certificate clients trust, and the server's certificate and key."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """Create a CA and a server certificate for localhost/127.0.0.1 in `directory`.

    Returns: the paths of the files written.
    Raises: TlsError when `openssl` is not installed or fails.
    """
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(
        ca_file=directory / "ca.pem",
        cert_file=directory / "server.pem",
        key_file=directory / "server.key",
    )
    ca_key = directory / "ca.key"
    csr = directory / "server.csr"
    extensions = directory / "server.ext"
    extensions.write_text(_SERVER_EXTENSIONS)
    _openssl(
        "req", "-x509", *_NEW_KEY, "-keyout", ca_key, "-out", files.ca_file, "-days", "30",
        "-subj", CA_SUBJECT,
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    _openssl(
        "req", "-new", *_NEW_KEY, "-keyout", files.key_file, "-out", csr,
        "-subj", f"/CN={SERVER_HOSTNAME}",
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", csr, "-CA", files.ca_file, "-CAkey", ca_key,
        # A random serial, not -CAcreateserial: no serial file to race on.
        "-set_serial", str(secrets.randbits(63)), "-days", "30",
        "-extfile", extensions, "-out", files.cert_file,
    )  # fmt: skip
    return files


_shared_lock = threading.Lock()
_shared: TlsFiles | None = None


def shared_tls_files() -> TlsFiles:
    """One CA and server certificate per process, made on first use, removed at exit.

    Every `Slapd(tls=True)` of a test session reuses them, so TLS costs three `openssl`
    runs per session instead of per server.
    """
    global _shared
    with _shared_lock:
        if _shared is None:
            directory = Path(tempfile.mkdtemp(prefix="idgate-tls-"))
            atexit.register(shutil.rmtree, directory, ignore_errors=True)
            _shared = make_tls_files(directory)
        return _shared


def _openssl(*args: str | Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise TlsError("openssl CLI not installed (apt-get install openssl)")
    completed = subprocess.run(
        [binary, *map(str, args)], capture_output=True, text=True, check=False, timeout=30
    )
    if completed.returncode != 0:
        raise TlsError(f"openssl {args[0]} failed: {completed.stderr.strip()}")
