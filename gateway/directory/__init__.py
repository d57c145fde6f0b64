"""The upstream directory connector of `ldap` and `ad` sources (SPEC §2).

`Directory` finds users by name (`NameKind`), reads them by immutable id, checks passwords
with a bind as the user (`verify`, on the reactor with ldaptor's codec: a Deferred of
`BindResult`), and streams the whole scope with paged searches (ldap3, in threads); it hands
out `DirectoryEntry` values, which `to_source_user` maps to what the status engine reads.
Everything ldap3, ldaptor and Twisted raise is translated here into `gateway.errors`
(UpstreamUnavailable, UpstreamTimeout, UpstreamError): nothing of them leaves the package.

The modules, each importing only those above it:

- `outcomes` (BindResult), `names` (NameKind, which attribute a name matches), `dn` (DN
  comparison and scope), `filters` (escaped RFC 4515 filters), `ppolicy` (OpenLDAP's password
  policy control), `adcodes` (AD's ``data XXX`` bind codes), `errors` (ldap3 → gateway errors);
- `binding` (a bind answer → BindResult), `entry` (DirectoryEntry from the raw response),
  `attributes` (what to request), `mapping` (to_source_user);
- `completeness` (whether a read covered its scope, and the operator's fix when not);
- `servers` (order and cool-down), `tls` (certificate checks), `connect` (opening connections,
  failover, the service bind), `pool` (connection pools), `reactor_binds` (the user's bind
  on the reactor: its own pool, deadlines and TLS, sharing `connect`'s server order);
- `directory` (Directory).
"""

from gateway.directory.directory import Directory
from gateway.directory.entry import DirectoryEntry
from gateway.directory.errors import IncompleteEntry
from gateway.directory.mapping import to_source_user
from gateway.directory.names import NameKind
from gateway.directory.outcomes import BindResult, PasswordChange

__all__ = [
    "BindResult",
    "Directory",
    "DirectoryEntry",
    "IncompleteEntry",
    "NameKind",
    "PasswordChange",
    "to_source_user",
]
