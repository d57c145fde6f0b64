"""Checks across sections: unique names, known source ids, unambiguous bind names, TLS, ports.

They read raw data (or a model dump) and tolerate any shape, so that `parse_config` can run them
even when some fields are invalid and report every problem at once.
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from gateway.config.checks import SOURCE_ID
from gateway.config.errors import ConfigIssue
from gateway.config.keys import dotted_key
from gateway.config.listen import same_address
from gateway.config.sources import BIND_KINDS
from gateway.errors import InvalidInput
from gateway.users.names import dn_key


def cross_reference_issues(raw: Mapping[str, Any]) -> list[ConfigIssue]:
    """Checks across sections, on raw data (or a model dump); tolerant of malformed shapes."""
    issues: list[ConfigIssue] = []
    sources = _items(raw.get("sources"))
    ldap = _table(raw.get("ldap"))

    def issue(loc: Sequence[str | int], message: str) -> None:
        issues.append(ConfigIssue(dotted_key(loc, raw), message))

    kinds: dict[str, Any] = {}
    for i, source in enumerate(sources):
        source_id = source.get("id")
        if isinstance(source_id, str):
            if source_id in kinds:
                first = next(j for j, s in enumerate(sources) if s.get("id") == source_id)
                issue(
                    ("sources", i, "id"),
                    f"duplicate source id {source_id!r} (first used by sources[{first}])",
                )
            else:
                kinds[source_id] = source.get("kind")

    for i, admin in _first_duplicates(_items(raw.get("admins")), lambda a: _str(a.get("name"))):
        issue(("admins", i, "name"), f"duplicate admin name {admin.get('name')!r}")

    accounts = _items(ldap.get("service_accounts"))
    for i, _ in _first_duplicates(accounts, lambda a: _dn_key_or_none(a.get("dn"))):
        issue(("ldap", "service_accounts", i, "dn"), "duplicate service account DN")

    default_sources = ldap.get("default_sources")
    if isinstance(default_sources, list | tuple):
        seen: set[str] = set()
        for i, source_id in enumerate(default_sources):
            if not isinstance(source_id, str) or not SOURCE_ID.fullmatch(source_id):
                continue  # not an id at all: reported by validation
            loc: tuple[str | int, ...] = ("ldap", "default_sources", i)
            if source_id in seen:
                issue(loc, f"source {source_id!r} is listed twice")
            elif source_id not in kinds:
                issue(loc, f"no source has id {source_id!r}")
            elif kinds[source_id] not in BIND_KINDS:
                issue(
                    loc,
                    f"source {source_id!r} is an entra source: Entra ID sends no"
                    " passwords, so nobody can bind there",
                )
            seen.add(source_id)

    claimed: dict[str, str] = {}
    for i, source in enumerate(sources):
        if source.get("kind") != "ad":
            continue
        label = dotted_key(("sources", i), raw)
        # Bind names are routed by UPN suffix and NetBIOS domain (SPEC §6): each names one source.
        names: list[tuple[tuple[str | int, ...], str]] = [
            (("sources", i, "upn_suffixes", j), suffix)
            for j, suffix in enumerate(_strings(source.get("upn_suffixes")))
        ]
        netbios = source.get("netbios_domain")
        if isinstance(netbios, str):
            names.append((("sources", i, "netbios_domain"), "\\" + netbios))
        for name_loc, name in names:
            folded = name.casefold().rstrip(".")
            if folded in claimed and claimed[folded] != label:
                issue(
                    name_loc, f"already claimed by {claimed[folded]}: bind names would be ambiguous"
                )
            claimed.setdefault(folded, label)

    front_tls = bool(ldap.get("tls_cert")) and bool(ldap.get("tls_key"))
    for i, source in enumerate(sources):
        if source.get("allow_password_change") is True and not front_tls:
            issue(
                ("sources", i, "allow_password_change"),
                "requires TLS on the LDAP front too (SPEC §2): set ldap.tls_cert and ldap.tls_key",
            )

    http = _table(raw.get("http"))
    for field in ("listen", "ldaps_listen"):
        if same_address(http.get("listen"), ldap.get(field)):
            issue(("ldap", field), "must differ from http.listen")
    return issues


def _table(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _items(value: Any) -> list[Mapping[str, Any]]:
    """The tables of an array of tables; anything else becomes an empty mapping."""
    if not isinstance(value, list | tuple):
        return []
    return [item if isinstance(item, Mapping) else {} for item in value]


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list | tuple) else []


def _first_duplicates(
    items: Sequence[Mapping[str, Any]], key: Callable[[Mapping[str, Any]], str | None]
) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """Every item whose key an earlier item already had (None keys are skipped)."""
    seen: set[Any] = set()
    for i, item in enumerate(items):
        value = key(item)
        if value is None:
            continue
        if value in seen:
            yield i, item
        seen.add(value)


def _dn_key_or_none(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return dn_key(value)
    except InvalidInput:
        return None
