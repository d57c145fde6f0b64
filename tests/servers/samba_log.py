"""Reading Samba's log: the simple binds it checked and the searches it answered."""

from __future__ import annotations

import re

from tests.servers.ldap_client import loose_dn

__all__ = ["DEFAULT_LOG_LEVEL", "count_binds", "count_searches", "logs_searches"]

# Level 5 is where Samba logs every LDAP search ("LDAP Query: ... filter: [...]"), which
# count_searches reads; binds are logged by auth_audit ("Auth: [LDAP,simple bind] ...").
# The JSON twins of the audit lines only double the log.
DEFAULT_LOG_LEVEL = (
    "5 auth_json_audit:0 dsdb_json_audit:0 dsdb_password_json_audit:0"
    " dsdb_transaction_json_audit:0 dsdb_group_json_audit:0"
)

# `Auth: [LDAP,simple bind/TLS] user [IDGATE]\[alice@idgate.test] at [...] with [Plaintext]
#  status [NT_STATUS_OK] ... became [IDGATE]\[alice] [S-1-5-...]` (or `mapped to [..]\[..]`)
_AUTH = re.compile(
    r"^Auth: \[LDAP,simple bind(?:/TLS)?\] user \[[^\]]*\]\\\[(?P<name>.*?)\] at \[.*?\]"
    r" with \[[^\]]*\] status \[(?P<status>\w+)\].*?"
    r"(?:became|mapped to) \[[^\]]*\]\\\[(?P<account>[^\]]*)\]",
    re.MULTILINE,
)
# `ldapsrv_SearchRequest: LDAP Query: Duration was 0.00s, SearchRequest by S-1-5-... from
#  ipv4:10.231.7.1:49853 filter: [(sAMAccountName=x)] basedn: [DC=...] scope: [SUB] ...`
# (also the "Long LDAP Query" and "MaxQueryDuration ... exceeded" variants).
_SEARCH = re.compile(
    r"SearchRequest by \S+ from \S+ filter: \[(?P<filter>.*?)\] basedn: \[(?P<base>.*?)\]"
)


def count_binds(
    log: str, name: str | None = None, *, account: str | None = None, status: str | None = None
) -> int:
    """How many simple binds `log` records, filtered as `SambaAD.count_binds` says."""
    count = 0
    for match in _AUTH.finditer(log):
        bind_name = match["name"].replace("\\\\", "\\")
        if name is not None and loose_dn(bind_name) != loose_dn(name):
            continue
        if account is not None and match["account"].lower() != account.lower():
            continue
        if status is not None and match["status"] != status:
            continue
        count += 1
    return count


def logs_searches(log_level: str) -> bool:
    """Whether Samba logs every search at this smb.conf `log level` (5 or more)."""
    return int(log_level.split()[0].split(":")[-1]) >= 5


def count_searches(log: str, contains: str | None = None) -> int:
    """How many searches `log` records, filtered as `SambaAD.count_searches` says."""
    wanted = None if contains is None else contains.lower()
    return sum(
        1
        for match in _SEARCH.finditer(log)
        if wanted is None or wanted in f"{match['filter']} {match['base']}".lower()
    )
