"""The one user store and what reads and writes it (SPEC §3, §4).

- `service` (UserService): the one entry point that changes user records from their sources,
  through the status engine, in the caller's unit of work; `applier` is the one interpreter
  of the engine's plans; `records` translates between store rows and engine values; `names`
  folds names the way lookups match them.
- `admin` (UserAdministration): administrators' actions on one user, one unit of work each.
- `provisioning`: what SCIM and Entra clients do to users and groups.
- `lookup`: single-user reads of a directory (include a user, sync one now).
- `tree` (DirectoryTree): the store as the directory tree the LDAP front searches.
"""
