"""The vocabulary shared by the engine's modules and their callers (SPEC §4.1, §4.2)."""

from enum import StrEnum


class SourceStatus(StrEnum):
    """What a source reports about one user on a successful read (SPEC §4.2).

    A failed read is not a status: the caller simply does not consult the engine.
    """

    ENABLED = "enabled"
    DISABLED = "disabled"
    EXPIRED = "expired"
    #: Deleted upstream, or out of scope (outside every root, wrong object class, filtered out).
    MISSING = "missing"


class Status(StrEnum):
    """The gateway's own status of a record. Pending deletion is a disabled record with a date."""

    ACTIVE = "active"
    DISABLED = "disabled"


class DisabledBy(StrEnum):
    SOURCE = "source"
    ADMIN = "admin"
    CLEANUP = "cleanup"


class Reason(StrEnum):
    SOURCE_DISABLED = "source_disabled"
    SOURCE_EXPIRED = "source_expired"
    MISSING = "missing"
    ADMIN = "admin"
    NEVER_USED = "never_used"


class Trigger(StrEnum):
    """Why a sync runs; the cleanup row of SPEC §4.2 depends on it."""

    #: An authentication attempt through the LDAP front (SPEC §5.1).
    JIT = "jit"
    #: An administrator syncing one user now (SPEC §5.2).
    SINGLE = "single"
    BULK = "bulk"
    REFRESH = "refresh"
    #: A SCIM or Entra client's write (SPEC §4.2, last paragraph).
    PROVISIONING = "provisioning"


class Role(StrEnum):
    SUPER_ADMIN = "super_admin"
    HELP_DESK = "help_desk"
