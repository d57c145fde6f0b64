"""Where OpenLDAP is installed, and the cn=config of a throwaway slapd as LDIF.

The configuration: mdb database with the memberof and ppolicy overlays, schemas core,
cosine, nis (shadowAccount) and inetorgperson, a rootDN on the data and on cn=config (so
tests change the configuration at run time), ACLs like a production directory's, and
optionally TLS. `slapadd -n0` turns the LDIF into a config directory.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.servers import seed
from tests.servers.tls import TlsFiles

ROOT_PASSWORD = "admin-secret"
CONFIG_DN = "cn=admin,cn=config"
CONFIG_PASSWORD = "config-secret"
PPOLICY_CONTROL = "1.3.6.1.4.1.42.2.27.8.5.1"
MANAGE_DSA_IT_CONTROL = "2.16.840.1.113730.3.4.2"  # RFC 3296 §3
MDB_DN = "olcDatabase={1}mdb,cn=config"
# Plain searches by an authenticated client stop at 500 entries (sizeLimitExceeded), paged
# ones (RFC 2696) may read the whole tree: a bulk sync that forgets to page fails as it
# would on AD.
DEFAULT_LIMITS = ("users size.soft=500 size.hard=500 size.prtotal=unlimited",)

# Where distributions put the pieces; Debian first (the project's machines are Debian).
_BIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/libexec", "/usr/local/libexec")
_MODULE_DIRS = ("/usr/lib/ldap", "/usr/lib64/openldap", "/usr/lib/openldap")
_SCHEMA_DIRS = ("/etc/ldap/schema", "/etc/openldap/schema")
_SCHEMAS = ("core", "cosine", "nis", "inetorgperson")
_MODULES = ("back_mdb", "ppolicy", "memberof")


class SlapdError(RuntimeError):
    """slapd could not be set up or started, or a helper's LDAP operation failed."""


class SlapdNotInstalled(SlapdError):
    """slapd, slapadd, the modules or the schemas are missing."""


@dataclass(frozen=True)
class Installation:
    """Where the OpenLDAP pieces live on this machine."""

    slapd: Path
    slapadd: Path
    module_dir: Path
    schema_dir: Path


def find_installation() -> Installation:
    """Locate slapd, slapadd, the module and the schema directories.

    Raises: SlapdNotInstalled naming what is missing.
    """
    slapd_bin = _find_binary("slapd")
    slapadd_bin = _find_binary("slapadd")
    module_dir = next((Path(d) for d in _MODULE_DIRS if Path(d, "ppolicy.so").exists()), None)
    schema_dir = next((Path(d) for d in _SCHEMA_DIRS if Path(d, "nis.ldif").exists()), None)
    missing = [
        name
        for name, found in (
            ("slapd", slapd_bin),
            ("slapadd", slapadd_bin),
            ("modules (ppolicy.so)", module_dir),
            ("schemas (nis.ldif)", schema_dir),
        )
        if found is None
    ]
    if missing or not (slapd_bin and slapadd_bin and module_dir and schema_dir):
        raise SlapdNotInstalled(f"OpenLDAP not installed, missing: {', '.join(missing)}")
    return Installation(slapd_bin, slapadd_bin, module_dir, schema_dir)


def _find_binary(name: str) -> Path | None:
    found = shutil.which(name)
    if found:
        return Path(found)
    # /usr/sbin is not on PATH for every user or CI runner.
    return next((Path(d, name) for d in _BIN_DIRS if Path(d, name).exists()), None)


def config_ldif(
    installation: Installation,
    workdir: Path,
    suffix: str,
    root_dn: str,
    policy_dn: str,
    tls_files: TlsFiles | None,
    *,
    limits: Sequence[str] = DEFAULT_LIMITS,
    size_limit: int | None = None,
    time_limit: int | None = None,
) -> str:
    """The LDIF for `slapadd -n0`: data in `workdir/data`, pid and args files in `workdir`.

    limits: the olcLimits values of the mdb database (empty: none).
    size_limit, time_limit: its olcSizeLimit and olcTimeLimit (None: unset, slapd's defaults
        of 500 entries and 3600 s), for the clients no olcLimits clause matches. slapd reads
        the clauses first, so what a clause leaves out is slapd's default, not these.
    """
    global_entry = [
        ("dn", "cn=config"),
        ("objectClass", "olcGlobal"),
        ("cn", "config"),
        # Inside the workdir: the defaults under /var/run may not exist or be writable.
        ("olcPidFile", str(workdir / "slapd.pid")),
        ("olcArgsFile", str(workdir / "slapd.args")),
    ]
    if tls_files is not None:
        global_entry += [
            ("olcTLSCACertificateFile", str(tls_files.ca_file)),
            ("olcTLSCertificateFile", str(tls_files.cert_file)),
            ("olcTLSCertificateKeyFile", str(tls_files.key_file)),
        ]
    modules = [
        ("dn", "cn=module{0},cn=config"),
        ("objectClass", "olcModuleList"),
        ("cn", "module{0}"),
        ("olcModulePath", str(installation.module_dir)),
        # A module built into slapd has no .so and must not be loaded again.
        *[
            ("olcModuleLoad", name)
            for name in _MODULES
            if (installation.module_dir / f"{name}.so").exists()
        ],
    ]
    schema = [("dn", "cn=schema,cn=config"), ("objectClass", "olcSchemaConfig"), ("cn", "schema")]
    config_db = [
        ("dn", "olcDatabase={0}config,cn=config"),
        ("objectClass", "olcDatabaseConfig"),
        ("olcDatabase", "{0}config"),
        ("olcRootDN", CONFIG_DN),
        ("olcRootPW", seed.ssha(CONFIG_PASSWORD)),
    ]
    mdb = [
        ("dn", MDB_DN),
        ("objectClass", "olcDatabaseConfig"),
        ("objectClass", "olcMdbConfig"),
        ("olcDatabase", "{1}mdb"),
        ("olcSuffix", suffix),
        ("olcRootDN", root_dn),
        ("olcRootPW", seed.ssha(ROOT_PASSWORD)),
        ("olcDbDirectory", str(workdir / "data")),
        # 1 GiB of address space, not of disk: room for benchmark-sized directories.
        ("olcDbMaxSize", str(1 << 30)),
        # Throwaway data: no fsync per write.
        ("olcDbNoSync", "TRUE"),
        ("olcDbIndex", "objectClass eq"),
        ("olcDbIndex", "uid,mail,cn eq,sub"),
        ("olcDbIndex", "entryUUID,member eq"),
        # Like a production directory: passwords are only usable for binds, anonymous
        # clients see nothing, authenticated ones (the service account) read the rest.
        ("olcAccess", "{0}to attrs=userPassword by self write by anonymous auth by * none"),
        ("olcAccess", "{1}to * by self read by users read by * none"),
        *[("olcLimits", value) for value in limits],
    ]
    if size_limit is not None:
        mdb.append(("olcSizeLimit", str(size_limit)))
    if time_limit is not None:
        mdb.append(("olcTimeLimit", str(time_limit)))
    memberof = [
        ("dn", "olcOverlay={0}memberof,olcDatabase={1}mdb,cn=config"),
        ("objectClass", "olcOverlayConfig"),
        ("objectClass", "olcMemberOf"),
        ("olcOverlay", "{0}memberof"),
        ("olcMemberOfGroupOC", "groupOfNames"),
        ("olcMemberOfMemberAD", "member"),
        ("olcMemberOfMemberOfAD", "memberOf"),
        # Deleting or renaming a user also fixes the groups that list them.
        ("olcMemberOfRefInt", "TRUE"),
    ]
    ppolicy = [
        ("dn", "olcOverlay={1}ppolicy,olcDatabase={1}mdb,cn=config"),
        ("objectClass", "olcOverlayConfig"),
        ("objectClass", "olcPPolicyConfig"),
        ("olcOverlay", "{1}ppolicy"),
        ("olcPPolicyDefault", policy_dn),
    ]
    parts = [seed.render_entry(global_entry), seed.render_entry(modules)]
    parts.append(seed.render_entry(schema))
    for name in _SCHEMAS:
        # The distribution's schema LDIFs are whole records; slapadd takes them as they are.
        parts.append((installation.schema_dir / f"{name}.ldif").read_text().strip() + "\n")
    parts += [seed.render_entry(entry) for entry in (config_db, mdb, memberof, ppolicy)]
    return "\n".join(parts)
