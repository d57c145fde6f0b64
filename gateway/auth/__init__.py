"""Who may pass (SPEC §5.1, §6, §7): binds on the LDAP front, tokens on the HTTP front.

- `binds` (Authenticator): a simple bind, from the name to the verdict; `routing` says which
  source a bind name belongs to; `jit` re-reads that user upstream before the verdict;
  `ratelimit` refuses a name after repeated failures; `lastauth` notes successful binds.
- `service_accounts`: the RADIUS servers' and SSO agents' own binds.
- `password_change`: RFC 3062 Password Modify, forwarded to the directory.
- `tokens`: bearer tokens of SCIM sources and administrators; `secrets`: the argon2id hashes
  behind every stored secret.
"""
