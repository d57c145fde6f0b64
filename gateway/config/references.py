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

Location = tuple[str | int, ...]
#: What a check finds: (where in the file, the problem), in the order an operator reads them.
Findings = Iterator[tuple[Location, str]]


def cross_reference_issues(raw: Mapping[str, Any]) -> list[ConfigIssue]:
    """Checks across sections, on raw data (or a model dump); tolerant of malformed shapes.

    Args:
        raw: the configuration as parsed from TOML (or `Config.model_dump()`).

    Returns:
        Every problem found, check by check in the order of `_CHECKS`, each under the dotted
        key an operator reads (`dotted_key`).
    """
    return [
        ConfigIssue(dotted_key(loc, raw), message)
        for check in _CHECKS
        for loc, message in check(raw)
    ]


def _duplicate_source_ids(raw: Mapping[str, Any]) -> Findings:
    sources = _items(raw.get("sources"))
    for i, source in _first_duplicates(sources, lambda s: _string_or_none(s.get("id"))):
        source_id = source.get("id")
        first = next(j for j, s in enumerate(sources) if s.get("id") == source_id)
        yield (
            ("sources", i, "id"),
            f"duplicate source id {source_id!r} (first used by sources[{first}])",
        )


def _duplicate_admin_names(raw: Mapping[str, Any]) -> Findings:
    admins = _items(raw.get("admins"))
    for i, admin in _first_duplicates(admins, lambda a: _string_or_none(a.get("name"))):
        yield ("admins", i, "name"), f"duplicate admin name {admin.get('name')!r}"


def _duplicate_service_account_dns(raw: Mapping[str, Any]) -> Findings:
    accounts = _items(_table(raw.get("ldap")).get("service_accounts"))
    for i, _ in _first_duplicates(accounts, lambda a: _dn_key_or_none(a.get("dn"))):
        yield ("ldap", "service_accounts", i, "dn"), "duplicate service account DN"


def _unknown_default_sources(raw: Mapping[str, Any]) -> Findings:
    """`ldap.default_sources` names each source once, and only sources one can bind to."""
    default_sources = _table(raw.get("ldap")).get("default_sources")
    if not isinstance(default_sources, list | tuple):
        return
    kinds = _source_kinds(_items(raw.get("sources")))
    seen: set[str] = set()
    for i, source_id in enumerate(default_sources):
        if not isinstance(source_id, str) or not SOURCE_ID.fullmatch(source_id):
            continue  # not an id at all: reported by validation
        loc: Location = ("ldap", "default_sources", i)
        if source_id in seen:
            yield loc, f"source {source_id!r} is listed twice"
        elif source_id not in kinds:
            yield loc, f"no source has id {source_id!r}"
        elif kinds[source_id] not in BIND_KINDS:
            yield (
                loc,
                f"source {source_id!r} is an entra source: Entra ID sends no"
                " passwords, so nobody can bind there",
            )
        seen.add(source_id)


def _ambiguous_bind_names(raw: Mapping[str, Any]) -> Findings:
    """Bind names are routed by UPN suffix and NetBIOS domain (SPEC §6): each names one source."""
    claimed: dict[str, str] = {}
    for i, source in enumerate(_items(raw.get("sources"))):
        if source.get("kind") != "ad":
            continue
        label = dotted_key(("sources", i), raw)
        for name_loc, name in _bind_names(i, source):
            folded = name.casefold().rstrip(".")
            if folded in claimed and claimed[folded] != label:
                yield (
                    name_loc,
                    f"already claimed by {claimed[folded]}: bind names would be ambiguous",
                )
            claimed.setdefault(folded, label)


def _password_change_without_tls(raw: Mapping[str, Any]) -> Findings:
    ldap = _table(raw.get("ldap"))
    front_tls = bool(ldap.get("tls_cert")) and bool(ldap.get("tls_key"))
    for i, source in enumerate(_items(raw.get("sources"))):
        if source.get("allow_password_change") is True and not front_tls:
            yield (
                ("sources", i, "allow_password_change"),
                "requires TLS on the LDAP front too (SPEC §2): set ldap.tls_cert and ldap.tls_key",
            )


def _shared_listen_addresses(raw: Mapping[str, Any]) -> Findings:
    ldap = _table(raw.get("ldap"))
    http_listen = _table(raw.get("http")).get("listen")
    for field in ("listen", "ldaps_listen"):
        if same_address(http_listen, ldap.get(field)):
            yield ("ldap", field), "must differ from http.listen"


#: The checks `cross_reference_issues` runs, in the order their findings are reported.
_CHECKS: tuple[Callable[[Mapping[str, Any]], Findings], ...] = (
    _duplicate_source_ids,
    _duplicate_admin_names,
    _duplicate_service_account_dns,
    _unknown_default_sources,
    _ambiguous_bind_names,
    _password_change_without_tls,
    _shared_listen_addresses,
)


def _source_kinds(sources: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Source id -> kind, of the first source with each id."""
    kinds: dict[str, Any] = {}
    for source in sources:
        source_id = source.get("id")
        if isinstance(source_id, str):
            kinds.setdefault(source_id, source.get("kind"))
    return kinds


def _bind_names(i: int, source: Mapping[str, Any]) -> list[tuple[Location, str]]:
    """The bind names an `ad` source (sources[i]) claims: its UPN suffixes, then `\\NETBIOS`."""
    names: list[tuple[Location, str]] = [
        (("sources", i, "upn_suffixes", j), suffix)
        for j, suffix in enumerate(_strings(source.get("upn_suffixes")))
    ]
    netbios = source.get("netbios_domain")
    if isinstance(netbios, str):
        names.append((("sources", i, "netbios_domain"), "\\" + netbios))
    return names


def _table(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _items(value: Any) -> list[Mapping[str, Any]]:
    """The tables of an array of tables; anything else becomes an empty mapping."""
    if not isinstance(value, list | tuple):
        return []
    return [item if isinstance(item, Mapping) else {} for item in value]


def _string_or_none(value: Any) -> str | None:
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
