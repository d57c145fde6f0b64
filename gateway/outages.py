"""Store outages, as the fronts see them: the fronts never import the store (SPEC §1), so the
store's classification of driver errors (`store.db.outage_of`) reaches them through here.
A separate module from `gateway.errors`: the pure engine imports that one, never the store.

Each front maps an `Outage` once, in one table per protocol: LDAP result codes in
`ldapproxy.codes`, HTTP statuses (SCIM and admin API alike) in `scim.errors`."""

from store.db import Outage, outage_of

__all__ = ["Outage", "outage_of"]
