"""The gateway's one exception tree, mapped once per front: to SCIM errors, to LDAP result codes.

    IdgateError
    ├── NotFound                 a user, source or job that does not exist (or is not visible)
    ├── PermissionDenied         the administrator's role does not allow the operation (SPEC §4.4)
    ├── InvalidInput             a value the caller sent is malformed (names the field)
    ├── Conflict                 the operation contradicts the current state
    │   ├── EnableRefused        manual enable while the source reports disabled/expired/missing
    │   ├── NameTaken            a unique name (userName, group displayName) is held already
    │   └── VersionMismatch      the caller's version (a SCIM If-Match ETag) is not current
    └── UpstreamError            an upstream directory failed (raised by the connector, from ldap3)
        ├── UpstreamUnavailable  no configured server answered
        ├── UpstreamTimeout      a read passed its deadline
        └── IncompleteRead       a read ended before it covered its scope (a limit, a missing
                                 root, a referral, paging refused, a connection lost between
                                 pages): it proves nobody gone (SPEC §5.3)

The store, a lower layer, has its own small tree in `store.errors` (SchemaOutOfDate).
Messages are safe to show an operator: they never carry a password, token or bind secret.
"""


class IdgateError(Exception):
    """Base of every error the gateway raises on purpose."""


class NotFound(IdgateError):
    pass


class PermissionDenied(IdgateError):
    pass


class InvalidInput(IdgateError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class Conflict(IdgateError):
    pass


class EnableRefused(Conflict):
    """SPEC §4.2/§4.4: an administrator cannot enable a user the source reports as not enabled."""

    def __init__(self, source_status: str) -> None:
        super().__init__(f"cannot enable: the source reports this user as {source_status}")
        self.source_status = source_status


class NameTaken(Conflict):
    """RFC 7644 §3.3: a second resource of one source with the same unique name."""

    def __init__(self, attribute: str, value: str) -> None:
        super().__init__(f"{attribute} {value!r} is already taken in this source")
        self.attribute = attribute
        self.value = value


class VersionMismatch(Conflict):
    """RFC 7644 §3.14: the resource changed since the version the caller names."""

    def __init__(self) -> None:
        super().__init__("the resource has changed since the version given (If-Match)")


class UpstreamError(IdgateError):
    pass


class UpstreamUnavailable(UpstreamError):
    pass


class UpstreamTimeout(UpstreamError):
    pass


class IncompleteRead(UpstreamError):
    """A directory read that did not cover the whole of what it asked for.

    Whoever holds one must not conclude from it that a user is gone: the entries it did not
    return may be there. The message names the source, the server, the root and what stopped
    the read, and says what an operator can change; it never carries the directory's text.
    """

    def __init__(self, message: str, *, root: str, shortfall: str, entries: int = 0) -> None:
        super().__init__(message)
        #: The root whose read did not complete.
        self.root = root
        #: What stopped it, in words (`gateway.directory.completeness.Shortfall`).
        self.shortfall = shortfall
        #: Entries of that root read before it stopped.
        self.entries = entries
