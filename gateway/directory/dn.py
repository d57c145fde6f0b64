"""Distinguished names compared as a directory compares them (RFC 4514 syntax, RFC 4518 rules).

Scope checks compare a DN with the configured roots: `is_within` holds when the DN equals a
root or lies below it. Attribute types and values are case-folded, ``\\XX`` and ``\\c``
escapes decoded and insignificant spaces dropped (caseIgnoreMatch, RFC 4518 §2.6.1), and the
parts of a multi-valued RDN sorted. Attribute types given as OIDs are not mapped to names (that
needs the schema): such a DN only fails to match, it never matches too much.
"""

from collections.abc import Iterable
from functools import lru_cache

# One comparison rule for the whole gateway: the store's DN keys and the connector's scope
# checks must agree on every DN.
from gateway.users.names import dn_parts as dn_key

__all__ = ["dn_key", "is_within", "parts_within"]

# The roots are a handful of configured DNs, checked against every entry a bulk sync reads.
_root_key = lru_cache(maxsize=256)(dn_key)


def is_within(dn: str, roots: Iterable[str]) -> bool:
    """Whether `dn` is one of `roots` or lies below one of them (compared as by `dn_key`)."""
    key = dn_key(dn)
    return key is not None and parts_within(key, roots)


def parts_within(key: tuple[str, ...], roots: Iterable[str]) -> bool:
    """`is_within` for a DN already split by `gateway.users.names.dn_parts`."""
    for root in roots:
        root_key = _root_key(root)
        if root_key is not None and len(key) >= len(root_key) and key[-len(root_key) :] == root_key:
            return True
    return False
