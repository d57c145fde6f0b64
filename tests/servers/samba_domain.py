"""The test domain's names, and how Active Directory encodes account state and time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = [
    "ACCOUNT_NEVER_EXPIRES",
    "ADMIN_PASSWORD",
    "BASE_DN",
    "DNS_DOMAIN",
    "HOST_NAME",
    "NETBIOS_DOMAIN",
    "QUERY_POLICY_DN",
    "QUERY_POLICY_LIMITS",
    "REALM",
    "SAMBA_ENFORCED_LIMITS",
    "UF_ACCOUNTDISABLE",
    "UF_DONT_EXPIRE_PASSWD",
    "UF_NORMAL_ACCOUNT",
    "UF_PASSWORD_EXPIRED",
    "filetime",
    "from_filetime",
    "unicode_pwd",
]

REALM = "IDGATE.TEST"
DNS_DOMAIN = "idgate.test"
NETBIOS_DOMAIN = "IDGATE"
HOST_NAME = "DC1"
BASE_DN = "DC=idgate,DC=test"
ADMIN_PASSWORD = "Adm1n!Passw0rd"

# The LDAP query policy ([MS-ADTS] 3.1.1.3.4.6): lDAPAdminLimits values "Name=value".
QUERY_POLICY_DN = (
    "CN=Default Query Policy,CN=Query-Policies,CN=Directory Service,CN=Windows NT,"
    f"CN=Services,CN=Configuration,{BASE_DN}"
)
QUERY_POLICY_LIMITS = frozenset({
    "InitRecvTimeout", "MaxActiveQueries", "MaxBatchReturnMessages", "MaxConnections",
    "MaxConnIdleTime", "MaxDatagramRecv", "MaxDirSyncDuration", "MaxNotificationPerConn",
    "MaxPageSize", "MaxPoolThreads", "MaxQueryDuration", "MaxReceiveBuffer",
    "MaxResultSetSize", "MaxResultSetsPerConn", "MaxTempTableSize", "MaxValRange",
    "MaxValRangeTransitive", "MinResultSets", "SystemMemoryLimitPercent", "ThreadMemoryLimit",
})  # fmt: skip
# What Samba 4.17's LDAP server acts on (source4/ldap_server/ldap_server.c,
# ldapsrv_load_limits, read when a connection is accepted). It also parses MaxPageSize but
# never uses it: pages are as large as the client asks, MaxResultSetSize and the client's
# sizeLimit are ignored, a search is never cut short with sizeLimitExceeded (short of 256 MiB
# of replies). Windows AD honours all of them.
SAMBA_ENFORCED_LIMITS = frozenset(
    {"InitRecvTimeout", "MaxConnIdleTime", "MaxNotificationPerConn", "MaxQueryDuration"}
)

# userAccountControl bits ([MS-ADTS] 2.2.16).
UF_ACCOUNTDISABLE = 0x2
UF_NORMAL_ACCOUNT = 0x200
UF_DONT_EXPIRE_PASSWD = 0x10000
UF_PASSWORD_EXPIRED = 0x800000  # only ever in msDS-User-Account-Control-Computed
# accountExpires: 0 and this value both mean "never".
ACCOUNT_NEVER_EXPIRES = 0x7FFFFFFFFFFFFFFF

_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)


def filetime(moment: datetime) -> int:
    """Windows FILETIME (100 ns intervals since 1601-01-01 UTC) of an aware datetime."""
    delta = moment - _FILETIME_EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


def from_filetime(value: int) -> datetime:
    """The datetime of a FILETIME (not for 0 / ACCOUNT_NEVER_EXPIRES, which mean never)."""
    return _FILETIME_EPOCH + timedelta(microseconds=value // 10)


def unicode_pwd(password: str) -> bytes:
    """The unicodePwd value that sets `password` ([MS-ADTS] 3.1.1.3.1.5.1: the password in
    double quotes, UTF-16LE)."""
    return f'"{password}"'.encode("utf-16-le")
