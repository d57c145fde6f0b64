"""`Config`: the whole configuration, and the lookups the rest of the gateway makes in it."""

from typing import Self

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from gateway.config.fields import Model
from gateway.config.references import cross_reference_issues
from gateway.config.sections import (
    AdminConfig,
    HttpConfig,
    LdapConfig,
    NotificationsConfig,
    StoreConfig,
    SyncConfig,
)
from gateway.config.sources import (
    BIND_KINDS,
    AdSource,
    DirectorySource,
    LdapSource,
    SourceConfig,
)


class Config(Model):
    """The whole configuration. Build it with `load_config` or `parse_config`."""

    store: StoreConfig = Field(default_factory=StoreConfig)
    http: HttpConfig = HttpConfig()
    ldap: LdapConfig = LdapConfig()
    sync: SyncConfig = SyncConfig()
    notifications: NotificationsConfig | None = None
    admins: tuple[AdminConfig, ...] = ()
    sources: tuple[SourceConfig, ...] = ()

    @model_validator(mode="after")
    def _references(self) -> Self:
        # parse_config runs the same checks on the raw data when a field is invalid (then this
        # validator does not run); here they also guard a Config built directly in Python.
        issues = cross_reference_issues(self.model_dump())
        if issues:
            raise PydanticCustomError(
                "idgate_issues",
                "{message}",
                {
                    "issues": [(i.key, i.message) for i in issues],
                    "message": "; ".join(map(str, issues)),
                },
            )
        return self

    def source(self, source_id: str) -> SourceConfig:
        """The source with this id.

        Raises:
            KeyError: no source has this id (the message lists the configured ids).
        """
        for source in self.sources:
            if source.id == source_id:
                return source
        known = ", ".join(s.id for s in self.sources) or "none"
        raise KeyError(f"no source with id {source_id!r} (configured: {known})")

    def directory_sources(self, *, include_disabled: bool = False) -> tuple[DirectorySource, ...]:
        """The `ldap` and `ad` sources in file order; enabled ones only unless asked."""
        return tuple(
            s
            for s in self.sources
            if isinstance(s, LdapSource | AdSource) and (include_disabled or s.enabled)
        )

    def bare_login_sources(self) -> tuple[SourceConfig, ...]:
        """Where a bare login name is looked up on the LDAP front, in order (SPEC §6).

        ``ldap.default_sources`` when set, else every source whose users can bind (all kinds
        but `entra`) in file order; disabled sources are skipped either way.
        """
        if self.ldap.default_sources:
            chosen = [self.source(i) for i in self.ldap.default_sources]
        else:
            chosen = [s for s in self.sources if s.kind in BIND_KINDS]
        return tuple(s for s in chosen if s.enabled)
