"""The one user store and what reads and writes it (SPEC §3, §4).

- `service` (UserService): the one entry point that changes user records, through the status
  engine; `records` translates between store rows and engine values; `names` folds names the
  way lookups match them.
- `provisioning`: what SCIM and Entra clients do to users and groups.
- `lookup`: single-user reads of a directory (include a user, sync one now).
- `tree` (DirectoryTree): the store as the directory tree the LDAP front searches.
"""
