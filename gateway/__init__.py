"""idgate: one user store for upstream directories and SCIM provisioning, over LDAP and SCIM."""

__version__ = "0.1.0"
