"""The gateway's configuration: one TOML file plus the environment, read once at start.

`load_config(path, environ)` reads the file; `parse_config(data, environ)` does the rest:

1. ``${NAME}`` in any string value is replaced by the environment variable NAME
   (``$${`` is a literal ``${``);
2. ``IDGATE_<SECTION>__<KEY>`` variables override keys of the tables store, http, ldap, sync
   and notifications;
3. pydantic validates the result into frozen models (unknown keys are errors);
4. references between sections are checked (source ids, default sources, UPN suffixes).

Every problem found on the way is collected, and one `ConfigError` reports them all, each as a
`ConfigIssue` keyed by the dotted path an operator reads in the file (``sync.refresh_after_days``,
``sources.corp.urls[1]``, ``admins.ops.role``). No message ever contains a configured value
other than a number, a source id or a file path: a misplaced password cannot leak through an
error. Secrets are `pydantic.SecretStr` (``**********`` in ``repr`` and ``str``); the store URL
and the webhook URL are shown redacted; hashes are left out of ``repr``.

The environment is an argument: only the CLI passes ``os.environ``. docs/configuration.md
documents every key.

The modules, each importing only those above it: `errors`, `checks` (single values), `fields`
(the models' base and field types), `listen`, `sections` (the plain tables), `mapping`
(attribute and status maps), `sources`, `keys` (dotted paths), `references` (checks across
sections), `model` (`Config`), `environment` (``${NAME}`` and overrides), `reporting` (pydantic
errors as issues) and `loading`.
"""

from gateway.config.errors import ConfigError, ConfigIssue
from gateway.config.listen import ListenAddress
from gateway.config.loading import load_config, parse_config
from gateway.config.mapping import AD_STATUS, AttributeMap, StatusConfig
from gateway.config.model import Config
from gateway.config.sections import (
    AdminConfig,
    HttpConfig,
    LdapConfig,
    NotificationsConfig,
    ServiceAccount,
    StoreConfig,
    SyncConfig,
)
from gateway.config.sources import (
    AdSource,
    DirectorySource,
    EntraSource,
    LdapSource,
    LocalSource,
    ScimSource,
    SourceConfig,
)

__all__ = [
    "AD_STATUS",
    "AdSource",
    "AdminConfig",
    "AttributeMap",
    "Config",
    "ConfigError",
    "ConfigIssue",
    "DirectorySource",
    "EntraSource",
    "HttpConfig",
    "LdapConfig",
    "LdapSource",
    "ListenAddress",
    "LocalSource",
    "NotificationsConfig",
    "ScimSource",
    "ServiceAccount",
    "SourceConfig",
    "StatusConfig",
    "StoreConfig",
    "SyncConfig",
    "load_config",
    "parse_config",
]
