"""Who may do what (SPEC §4.4).

A `super_admin` may do everything; a `help_desk` administrator works on users only.
"""

from enum import StrEnum

from gateway.engine.types import Role


class Permission(StrEnum):
    VIEW_USERS = "view_users"
    SYNC_USER = "sync_user"
    DISABLE_USER = "disable_user"
    ENABLE_USER = "enable_user"
    EDIT_PHONES = "edit_phones"
    MANAGE_DEVICES = "manage_devices"
    EDIT_NOTES = "edit_notes"
    MANAGE_SOURCES = "manage_sources"
    RUN_JOBS = "run_jobs"
    EDIT_SETTINGS = "edit_settings"
    VIEW_AUDIT = "view_audit"


_GRANTS: dict[Role, frozenset[Permission]] = {
    Role.SUPER_ADMIN: frozenset(Permission),
    Role.HELP_DESK: frozenset(
        {
            Permission.VIEW_USERS,
            Permission.SYNC_USER,
            Permission.DISABLE_USER,
            Permission.ENABLE_USER,
            Permission.EDIT_PHONES,
            Permission.MANAGE_DEVICES,
            Permission.EDIT_NOTES,
        }
    ),
}


def allowed(role: Role, permission: Permission) -> bool:
    return permission in _GRANTS[role]
