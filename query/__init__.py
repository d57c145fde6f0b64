"""The neutral query language between the fronts and the store.

`query.filter` holds the filter nodes the LDAP front (RFC 4515) and the SCIM front (RFC 7644
§3.4.2.2) translate their clients' filters into, and `store.search` compiles to SQL. Pure
values: this package imports nothing of idgate and no third-party library, so every layer may
use it and the fronts reach it without reaching the store.
"""
