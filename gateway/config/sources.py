"""The ``[[sources]]`` tables: one model per kind, with the checks each kind needs (SPEC §2, §7)."""

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gateway.config.checks import DOWNLEVEL, NETBIOS, UPN, distinguished_name, ldap_filter, ldap_url
from gateway.config.fields import (
    Argon2Hash,
    AttributeName,
    DisableCount,
    DisablePercent,
    DistinguishedName,
    ExistingFile,
    HostName,
    Integer,
    Model,
    NonBlank,
    Number,
    SourceId,
)
from gateway.config.mapping import AD_STATUS, AttributeMap, StatusConfig
from gateway.config.sections import SyncConfig
from gateway.engine.guard import DisableLimits
from gateway.engine.statusmap import StatusMapping

SOURCE_KINDS = ("ad", "entra", "ldap", "local", "scim")
#: Source kinds whose users can bind on the LDAP front (Entra ID sends no passwords, SPEC §7).
BIND_KINDS = ("ad", "ldap", "local", "scim")


class _SourceBase(Model):
    id: SourceId
    display_name: NonBlank | None = None
    enabled: bool = True


def _scheme(url: str) -> str:
    return url.partition("://")[0].lower()


class _DirectorySource(_SourceBase):
    """What `ldap` and `ad` sources share. Field order matters: validators read earlier fields."""

    urls: tuple[Annotated[str, AfterValidator(ldap_url)], ...] = Field(min_length=1)
    start_tls: bool = False
    ca_file: ExistingFile | None = None
    tls_server_names: tuple[HostName, ...] = ()
    bind_dn: str
    bind_password: SecretStr
    roots: tuple[DistinguishedName, ...] = Field(min_length=1)
    user_object_class: AttributeName = "inetOrgPerson"
    user_filter: Annotated[str, AfterValidator(ldap_filter)] | None = None
    id_attribute: AttributeName = "entryUUID"
    login_attribute: AttributeName = "uid"
    user_limit: Integer = Field(default=100_000, ge=1)
    allow_password_change: bool = False
    connect_timeout_seconds: Number = Field(default=5.0, gt=0, le=60, allow_inf_nan=False)
    operation_timeout_seconds: Number = Field(default=10.0, gt=0, le=600, allow_inf_nan=False)
    failover_cooldown_seconds: Number = Field(default=30.0, ge=0, le=3600, allow_inf_nan=False)
    page_size: Integer = Field(default=500, ge=1, le=5000)
    pool_size: Integer = Field(default=4, ge=1, le=64)
    # Always filled by _attribute_defaults (user_name from login_attribute, kind defaults);
    # the default only keeps the signature honest for Python callers.
    attributes: AttributeMap = AttributeMap(user_name="uid")
    status: StatusConfig = StatusConfig()
    #: This source's mass-disable thresholds (SPEC §5.3); absent: those of [sync].
    max_disable_count: DisableCount | None = None
    max_disable_percent: DisablePercent | None = None

    #: Kind-specific defaults of [sources.attributes].
    _default_display_name: ClassVar[str] = "cn"
    _default_groups: ClassVar[str | None] = None
    #: AD also accepts user@domain and DOMAIN\user as the service account's bind name.
    _windows_bind_names: ClassVar[bool] = False

    @model_validator(mode="before")
    @classmethod
    def _attribute_defaults(cls, data: Any) -> Any:
        """Fill kind-specific defaults, and user_name from login_attribute, into attributes."""
        if not isinstance(data, Mapping):
            return data
        attributes = data.get("attributes", {})
        if not isinstance(attributes, Mapping):
            return data
        login = data.get("login_attribute")
        if not isinstance(login, str):
            login = cls.model_fields["login_attribute"].default
        filled = {"user_name": login, "display_name": cls._default_display_name}
        if cls._default_groups is not None:
            filled["groups"] = cls._default_groups
        return {**data, "attributes": {**filled, **attributes}}

    @field_validator("urls")
    @classmethod
    def _one_scheme(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        if len({_scheme(url) for url in urls}) > 1:
            raise ValueError(
                "mixes ldap:// and ldaps://, so a failover would silently drop TLS: use"
                " ldaps:// everywhere, or ldap:// with start_tls = true"
            )
        return urls

    @field_validator("start_tls")
    @classmethod
    def _start_tls_on_ldap(cls, value: bool, info: ValidationInfo) -> bool:
        urls = info.data.get("urls", ())
        if value and any(_scheme(url) == "ldaps" for url in urls):
            raise ValueError("cannot be used with ldaps:// urls, which are TLS already")
        return value

    @field_validator("ca_file", "tls_server_names")
    @classmethod
    def _only_with_tls(cls, value: Any, info: ValidationInfo) -> Any:
        if value and "urls" in info.data and "start_tls" in info.data and not _uses_tls(info.data):
            raise ValueError(
                "has no effect: connections do not use TLS (use ldaps:// urls or start_tls = true)"
            )
        return value

    @field_validator("bind_dn")
    @classmethod
    def _bind_name(cls, value: str) -> str:
        if cls._windows_bind_names and (UPN.fullmatch(value) or DOWNLEVEL.fullmatch(value)):
            return value
        try:
            return distinguished_name(value)
        except ValueError:
            if cls._windows_bind_names:
                raise ValueError("must be a DN, user@domain or DOMAIN\\user") from None
            raise

    @field_validator("bind_password")
    @classmethod
    def _password_not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            # An empty password is an unauthenticated bind (RFC 4513 §5.1.2).
            raise ValueError("must not be empty: an empty password is an unauthenticated bind")
        return value

    @field_validator("allow_password_change")
    @classmethod
    def _password_change_over_tls(cls, value: bool, info: ValidationInfo) -> bool:
        if (
            value
            and "urls" in info.data
            and "start_tls" in info.data
            and not all(_scheme(url) == "ldaps" for url in info.data["urls"])
            and not info.data["start_tls"]
        ):
            raise ValueError(
                "requires TLS to the directory (SPEC §2): use ldaps:// urls or start_tls = true"
            )
        return value

    @property
    def uses_tls(self) -> bool:
        """Whether every connection to the directory is protected by TLS."""
        return _uses_tls({"urls": self.urls, "start_tls": self.start_tls})

    def status_mapping(self) -> StatusMapping:
        """The status engine's mapping for this source (SPEC §4.3)."""
        return self.status.mapping()

    def disable_limits(self, sync: SyncConfig) -> DisableLimits:
        """The mass-disable guard's thresholds for this source: its own, else [sync]'s."""
        count = self.max_disable_count
        count = sync.max_disable_count if count is None else count
        percent = self.max_disable_percent
        percent = sync.max_disable_percent if percent is None else percent
        return DisableLimits(
            count=None if count is False else int(count),
            percent=None if percent is False else float(percent),
        )


def _uses_tls(data: Mapping[str, Any]) -> bool:
    urls: Sequence[str] = data["urls"]
    return bool(data["start_tls"]) or all(_scheme(url) == "ldaps" for url in urls)


class LdapSource(_DirectorySource):
    """``kind = "ldap"``: an LDAPv3 directory, read-only (SPEC §2)."""

    kind: Literal["ldap"] = "ldap"


class AdSource(_DirectorySource):
    """``kind = "ad"``: Active Directory, with its attribute and status mapping built in."""

    kind: Literal["ad"] = "ad"
    user_object_class: AttributeName = "user"
    id_attribute: AttributeName = "objectGUID"
    login_attribute: AttributeName = "sAMAccountName"
    upn_suffixes: tuple[HostName, ...] = ()
    netbios_domain: str | None = None
    status: StatusConfig = AD_STATUS

    _default_display_name: ClassVar[str] = "displayName"
    _default_groups: ClassVar[str | None] = "memberOf"
    _windows_bind_names: ClassVar[bool] = True

    @field_validator("netbios_domain")
    @classmethod
    def _netbios(cls, value: str | None) -> str | None:
        if value is not None and not NETBIOS.fullmatch(value):
            raise ValueError(
                'must be a NetBIOS domain name: 1-15 characters, no \\/:*?"<>| or dots'
            )
        return value


class _ProvisionedSource(_SourceBase):
    token_hash: Argon2Hash = Field(repr=False)
    hard_delete: bool = False


class ScimSource(_ProvisionedSource):
    """``kind = "scim"``: any SCIM 2.0 client pushes users (SPEC §2, §7)."""

    kind: Literal["scim"] = "scim"


class EntraSource(_ProvisionedSource):
    """``kind = "entra"``: Microsoft Entra ID provisioning (SPEC §7)."""

    kind: Literal["entra"] = "entra"


class LocalSource(_SourceBase):
    """``kind = "local"``: users managed by administrators, passwords stored hashed."""

    kind: Literal["local"] = "local"


DirectorySource = LdapSource | AdSource
SourceConfig = Annotated[
    LdapSource | AdSource | ScimSource | EntraSource | LocalSource, Field(discriminator="kind")
]
