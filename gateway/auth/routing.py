"""Which source a bind name belongs to, and in which form to look it up (SPEC §6).

A client may bind as a DN, a bare login name, `user@domain` (UPN) or `DOMAIN\\user`. This
module only routes: it never builds a DN from the client's text. The directory connector then
resolves the name by an escaped search and binds with the DN that search returned.
"""

import re
from dataclasses import dataclass

from gateway.config import AdSource, Config, LdapSource, SourceConfig
from gateway.directory import NameKind
from gateway.directory.dn import parts_within
from gateway.users.names import dn_key, dn_parts, name_key


@dataclass(frozen=True)
class Subject:
    """One place to look a bind name up: a source, the form of the name, the name itself."""

    source: SourceConfig
    kind: NameKind
    value: str

    @property
    def key(self) -> str:
        """The name's comparison key within its source (for the store and the JIT window)."""
        if self.kind is NameKind.DN:
            return f"dn:{dn_key(self.value)}"
        return f"{self.kind.value}:{name_key(self.value)}"


def subjects(name: str, config: Config) -> list[Subject]:
    """Where to look a bind name up, in order; empty when no source can hold it (which
    follows from the configuration alone: what it tells a client is public).

    - a DN: the directory source whose roots contain it; a SCIM or local user's DN
      `uid=<userName>,ou=<source id>,<ldap.suffix>` (SPEC §6 naming contexts);
    - `DOMAIN\\user`: the AD source with that NetBIOS domain;
    - `user@domain`: the AD source with that UPN suffix, else the bare-name sources with the
      whole text as login name (many LDAP directories use mail-like uids);
    - anything else: the bare-name sources (`ldap.default_sources`, or all in file order);
    - a name with a control character, even escaped in a DN: nowhere.
    """
    if has_control_character(name):
        # No directory or SCIM userName holds one (PostgreSQL text cannot even store NUL);
        # slapd answers such a name with invalidCredentials as well.
        return []
    name = name.strip()
    if not name:
        return []
    # A login name has no '='; a DN always has one per RDN (RFC 4514 §3).
    parts = dn_parts(name) if "=" in name else None
    if parts is not None:
        return _dn_subjects(name, parts, config)
    enabled = [s for s in config.sources if s.enabled]
    if "\\" in name:
        domain, _, user = name.partition("\\")
        return [
            Subject(s, NameKind.DOWNLEVEL, name)
            for s in enabled
            if isinstance(s, AdSource)
            and s.netbios_domain
            and s.netbios_domain.casefold() == domain.casefold()
            and user
        ]
    if "@" in name:
        domain = name.rpartition("@")[2].casefold()
        by_suffix = [
            Subject(s, NameKind.UPN, name)
            for s in enabled
            if isinstance(s, AdSource) and domain in (x.casefold() for x in s.upn_suffixes)
        ]
        if by_suffix:
            return by_suffix
    return [Subject(s, NameKind.LOGIN, name) for s in config.bare_login_sources()]


_CONTROL = re.compile("[\x00-\x1f\x7f]")
# RFC 4514 §2.4: `\\` and a pair of hex digits is one octet; an escaped character otherwise.
# In UTF-8 the octets 00-1F and 7F are always the control character itself.
_HEX_ESCAPE = re.compile(r"\\([0-9A-Fa-f]{2}|.)", re.DOTALL)
_ESCAPED_CONTROL = re.compile(r"[01][0-9A-Fa-f]|7[Ff]")


def has_control_character(text: str) -> bool:
    """Whether `text` holds a C0 control character or DEL (U+0000-U+001F, U+007F)."""
    return _CONTROL.search(text) is not None


def _dn_subjects(name: str, parts: tuple[str, ...], config: Config) -> list[Subject]:
    if any(_ESCAPED_CONTROL.fullmatch(m) for m in _HEX_ESCAPE.findall(name)):
        return []  # the same, written as an RFC 4514 escape (`\\00`, `\\0a`)
    found: list[Subject] = []
    for source in config.sources:
        if not source.enabled:
            continue
        if isinstance(source, LdapSource | AdSource):
            if parts_within(parts, source.roots):
                found.append(Subject(source, NameKind.DN, name))
            continue
        # SCIM and local users are served as uid=<userName>,ou=<source id>,<suffix>.
        container = dn_parts(f"ou={source.id},{config.ldap.suffix}")
        first = parts[0]
        if parts[1:] == container and first.startswith("uid=") and "+" not in first:
            found.append(Subject(source, NameKind.LOGIN, first.removeprefix("uid=")))
    return found
