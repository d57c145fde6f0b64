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
"""

import difflib
import os
import re
import tomllib
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parseaddr
from ipaddress import IPv6Address, ip_address
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self, Union, get_args, get_origin
from urllib.parse import SplitResult, urlsplit

from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.dn import parse_dn
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from gateway.engine.statusmap import (
    AD_STATUS_MAPPING,
    ExpirationFormat,
    StatusMapping,
)
from gateway.engine.types import Role
from gateway.errors import InvalidInput
from gateway.names import dn_key
from gateway.secrets import is_argon2_hash

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

SOURCE_KINDS = ("ad", "entra", "ldap", "local", "scim")
#: Source kinds whose users can bind on the LDAP front (Entra ID sends no passwords, SPEC §7).
BIND_KINDS = ("ad", "ldap", "local", "scim")
#: The tables `IDGATE_<SECTION>__<KEY>` may override.
OVERRIDE_SECTIONS = ("http", "ldap", "notifications", "store", "sync")
ENV_PREFIX = "IDGATE_"


# --- errors -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in the configuration.

    Attributes:
        key: where, as a dotted path (``sources.corp.urls[1]``), an environment variable name
            for a malformed override, or the file's path for a file that cannot be read.
        message: what is wrong; never contains a configured string value.
    """

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class ConfigError(Exception):
    """The configuration is invalid; `issues` lists every problem, in file order."""

    def __init__(self, issues: Iterable[ConfigIssue]) -> None:
        unique = list(dict.fromkeys(issues))
        super().__init__("\n".join(str(issue) for issue in unique))
        self.issues: list[ConfigIssue] = unique


def _at(field: str, message: str) -> PydanticCustomError:
    """An error a field validator reports against a sibling field (``field``) instead."""
    return PydanticCustomError("idgate_sibling", "{message}", {"field": field, "message": message})


# --- value checks (pure; messages never repeat the value) ----------------------------------

_SOURCE_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_ADMIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
_ATTRIBUTE = re.compile(r"(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)(?:;[A-Za-z0-9-]+)*")
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?")
_NETBIOS = re.compile(r"[^\\/:*?\"<>|.\s][^\\/:*?\"<>|\s]{0,14}")
_UPN = re.compile(r"[^@\s]+@[A-Za-z0-9.-]+")
_DOWNLEVEL = re.compile(r"[^\\\s]+\\[^\\\s]+")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")


def _source_id(value: str) -> str:
    if not _SOURCE_ID.fullmatch(value):
        raise ValueError(
            "must be 1-63 characters: lowercase letters, digits, '_' and '-', starting with a"
            " letter or digit (it appears in URLs and DNs)"
        )
    return value


def _admin_name(value: str) -> str:
    if not _ADMIN_NAME.fullmatch(value):
        raise ValueError(
            "must be 1-64 characters: letters, digits, '_', '.', '@' and '-', starting with a"
            " letter or digit"
        )
    return value


def _attribute_name(value: str) -> str:
    if not _ATTRIBUTE.fullmatch(value):
        raise ValueError("must be an LDAP attribute name, e.g. mail or 2.5.4.3 (RFC 4512 §2.5)")
    return value


def _hostname(value: str) -> str:
    if _HOSTNAME.fullmatch(value):
        return value
    try:
        ip_address(value)
    except ValueError:
        raise ValueError("must be a host name or an IP address") from None
    return value


def _distinguished_name(value: str) -> str:
    try:
        parse_dn(value, escape=False, strip=True)
    except LDAPInvalidDnError:
        # ldap3's message quotes the DN; ours does not.
        raise ValueError(
            "must be a DN: attr=value components separated by commas, e.g."
            " ou=people,dc=example,dc=org (RFC 4514)"
        ) from None
    return value


def _ldap_filter(value: str) -> str:
    """Check an RFC 4515 filter loosely: one parenthesised filter, balanced, escapes valid."""
    if not (value.startswith("(") and value.endswith(")")):
        raise ValueError("must be one parenthesised LDAP filter, e.g. (objectClass=person)")
    depth = 0
    i = 0
    while i < len(value):
        char = value[i]
        if char == "\\":
            # RFC 4515 §3: a backslash is always followed by two hex digits.
            if not re.fullmatch(r"[0-9A-Fa-f]{2}", value[i + 1 : i + 3]):
                raise ValueError("a backslash must start a \\XX hex escape (RFC 4515 §3)")
            i += 3
            continue
        if char == "(":
            depth += 1
            if value[i + 1 : i + 2] not in ("&", "|", "!", "("):
                leaf_end = value.find(")", i)
                if leaf_end < 0 or "=" not in value[i:leaf_end]:
                    raise ValueError("every (attribute=value) item needs an operator (RFC 4515)")
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise ValueError("unbalanced parentheses")
            if depth == 0 and i != len(value) - 1:
                raise ValueError("must be one filter: combine several with (&...) or (|...)")
        i += 1
    if depth != 0:
        raise ValueError("unbalanced parentheses")
    return value


def _split_url(value: str) -> SplitResult:
    """urlsplit, with its errors (which quote the URL) replaced by ours."""
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises on a port that is not a number or out of range
    except ValueError:
        raise ValueError("is not a valid URL (bad host or port)") from None
    return parts


def _ldap_url(value: str) -> str:
    parts = _split_url(value)
    if parts.scheme.lower() not in ("ldap", "ldaps"):
        raise ValueError("must start with ldap:// or ldaps://")
    if not parts.hostname:
        raise ValueError("must name a host: ldap://HOST[:PORT] or ldaps://HOST[:PORT]")
    if parts.username is not None or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("must name a server only (no DN, attributes, filter or credentials)")
    return value


def _http_url(value: str) -> str:
    parts = _split_url(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return value


def _base_url(value: str) -> str:
    _http_url(value)
    parts = urlsplit(value)
    if parts.query or parts.fragment or parts.username is not None:
        raise ValueError("must be scheme://host[:port][/path] only")
    # SCIM meta.location is built by appending paths: no trailing slash (RFC 7644 §3.1).
    return value.rstrip("/")


def _email_address(value: str) -> str:
    _, address = parseaddr(value)
    if not address or "@" not in address or any(c.isspace() for c in address):
        raise ValueError("must be an e-mail address, e.g. idgate@example.org")
    return value


def _argon2_hash(value: str) -> str:
    if not is_argon2_hash(value):
        raise ValueError(
            "must be an argon2 hash, not a cleartext secret: run `idgate hash-secret` and"
            " paste its output ($argon2id$...)"
        )
    return value


def _existing_file(value: Path, info: ValidationInfo) -> Path:
    """Resolve a path against the config file's directory and require a readable file."""
    if str(value) in ("", "."):
        raise ValueError("must be a file path")
    # No ~ expansion: it would read HOME behind the caller's back; ${HOME}/... works.
    path = (_base_dir(info) / value).resolve()
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    if not os.access(path, os.R_OK):
        raise ValueError(f"file not readable by this process: {path}")
    return path


def _base_dir(info: ValidationInfo | None) -> Path:
    context = info.context if info is not None else None
    if isinstance(context, Mapping) and isinstance(context.get("base_dir"), Path):
        return Path(context["base_dir"])
    return Path.cwd()


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _integer(value: Any) -> Any:
    # Lax mode (kept for numbers that come from ${NAME} as text) would read true as 1.
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


def _number(value: Any) -> Any:
    if isinstance(value, bool):
        raise PydanticCustomError("float_type", "Input should be a valid number")
    return value


Integer = Annotated[int, BeforeValidator(_integer)]
Number = Annotated[float, BeforeValidator(_number)]
SourceId = Annotated[str, AfterValidator(_source_id)]
AttributeName = Annotated[str, AfterValidator(_attribute_name)]
DistinguishedName = Annotated[str, AfterValidator(_distinguished_name)]
HostName = Annotated[str, AfterValidator(_hostname)]
Argon2Hash = Annotated[str, AfterValidator(_argon2_hash)]
ExistingFile = Annotated[Path, AfterValidator(_existing_file)]
EmailAddress = Annotated[str, AfterValidator(_email_address)]
NonBlank = Annotated[str, AfterValidator(_not_blank)]


# --- models -------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ListenAddress(_Model):
    """A ``host:port`` to listen on; IPv6 hosts in brackets (``[::1]:8080``).

    ``host`` is kept without brackets. Port 0 asks the OS for any free port (tests).
    """

    host: HostName
    port: Integer = Field(ge=0, le=65535)

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        return _parse_listen(data) if isinstance(data, str) else data

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _parse_listen(text: str) -> dict[str, Any]:
    usage = "must be HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080"
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise ValueError(usage)
        try:
            IPv6Address(host)
        except ValueError:
            raise ValueError("must hold an IPv6 address between the brackets") from None
    else:
        host, sep, port = text.rpartition(":")
        if not sep or not host:
            raise ValueError(usage)
        if ":" in host:
            raise ValueError("IPv6 addresses go in brackets, e.g. [::1]:8080")
        _hostname(host)
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("port must be a number from 0 to 65535")
    return {"host": host, "port": int(port)}


def _redact_url(url: str, *, keep_path: bool) -> str:
    """A URL fit for a log: no password; with ``keep_path=False`` no path or query either."""
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
    except ValueError:
        return "<invalid URL>"
    user = (
        f"{parts.username}:***@"
        if parts.password is not None
        else (f"{parts.username}@" if parts.username else "")
    )
    if keep_path:
        rest = parts.path + (f"?{parts.query}" if parts.query else "")
    else:
        rest = "/..." if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{user}{host}{rest}"


class StoreConfig(_Model):
    """``[store]``: where the user store lives (SPEC §8)."""

    url: str = Field(default="sqlite:///./idgate.db", validate_default=True)
    pool_size: Integer = Field(default=10, ge=1, le=200)
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str, info: ValidationInfo) -> str:
        scheme, sep, rest = value.partition("://")
        supported = (
            "supported: sqlite:///PATH and postgresql+psycopg://USER@HOST/DB"
            " (postgresql:// is read as postgresql+psycopg://)"
        )
        if not sep or not _SCHEME.fullmatch(scheme):
            raise ValueError(f"must be a database URL; {supported}")
        scheme = scheme.lower()
        if scheme == "postgresql":
            scheme = "postgresql+psycopg"
        if scheme == "postgresql+psycopg":
            if not rest:
                raise ValueError("must name a server or a database after postgresql+psycopg://")
            return f"{scheme}://{rest}"
        if scheme != "sqlite":
            raise ValueError(f"unsupported scheme {scheme!r}; {supported}")
        path, qmark, query = rest.partition("?")
        if not path.startswith("/") or path == "/":
            raise ValueError("must be sqlite:///relative/path or sqlite:////absolute/path")
        path = path[1:]
        if path != ":memory:" and not Path(path).is_absolute():
            # Relative to the config file, like every other path in it.
            path = str((_base_dir(info) / path).resolve())
        return f"sqlite:///{path}{qmark}{query}"

    @property
    def redacted_url(self) -> str:
        """``url`` with any password replaced by ``***``, for logs."""
        return _redact_url(self.url, keep_path=True)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield (name, self.redacted_url) if name == "url" else (name, value)


class HttpConfig(_Model):
    """``[http]``: the SCIM and admin front."""

    listen: ListenAddress = ListenAddress(host="127.0.0.1", port=8080)
    public_base_url: Annotated[str, AfterValidator(_base_url)] | None = None

    @property
    def host(self) -> str:
        return self.listen.host

    @property
    def port(self) -> int:
        return self.listen.port


class ServiceAccount(_Model):
    """``[[ldap.service_accounts]]``: who may bind to the LDAP front and search (SPEC §6)."""

    dn: DistinguishedName
    password_hash: Argon2Hash = Field(repr=False)


class LdapConfig(_Model):
    """``[ldap]``: the LDAP front (SPEC §6)."""

    listen: ListenAddress = ListenAddress(host="127.0.0.1", port=3389)
    tls_cert: ExistingFile | None = None
    tls_key: ExistingFile | None = Field(default=None, validate_default=True)
    ldaps_listen: ListenAddress | None = None
    suffix: DistinguishedName = "dc=idgate"
    default_sources: tuple[SourceId, ...] = ()
    allow_anonymous_search: bool = False
    service_accounts: tuple[ServiceAccount, ...] = ()

    @field_validator("tls_key")
    @classmethod
    def _key_with_cert(cls, key: Path | None, info: ValidationInfo) -> Path | None:
        if "tls_cert" not in info.data:  # tls_cert itself is invalid: reported there
            return key
        cert = info.data["tls_cert"]
        if cert is not None and key is None:
            raise ValueError("required when tls_cert is set")
        if cert is None and key is not None:
            raise _at("tls_cert", "required when tls_key is set")
        return key

    @field_validator("ldaps_listen")
    @classmethod
    def _ldaps_needs_tls(
        cls, value: ListenAddress | None, info: ValidationInfo
    ) -> ListenAddress | None:
        data = info.data
        if value is None:
            return value
        if data.get("tls_cert", "") is None and data.get("tls_key", "") is None:
            raise ValueError("requires tls_cert and tls_key")
        listen = data.get("listen")
        if listen is not None and _same_address(listen, value):
            raise ValueError("must differ from listen")
        return value

    @property
    def tls(self) -> bool:
        """Whether the front offers StartTLS (and LDAPS when ``ldaps_listen`` is set)."""
        return self.tls_cert is not None and self.tls_key is not None


class SyncConfig(_Model):
    """``[sync]``: JIT throttle, daily refresh, cleanup, bind rate limit, job details (SPEC §5)."""

    jit_interval_seconds: Integer = Field(default=300, ge=0)
    jit_deadline_seconds: Number = Field(default=2.0, gt=0, le=60, allow_inf_nan=False)
    refresh_after_days: Integer = Field(default=30, ge=7)
    refresh_batch: Integer = Field(default=1000, ge=1, le=100_000)
    cleanup_never_used_days: Integer = Field(default=30, ge=1)
    pending_deletion_days: Integer = Field(default=7, ge=1)
    failed_auth_limit: Integer = Field(default=5, ge=1)
    failed_auth_window_seconds: Integer = Field(default=300, ge=1)
    details_limit: Integer = Field(default=400, ge=1, le=400)


class AdminConfig(_Model):
    """``[[admins]]``: an administrator of the admin API (SPEC §4.4)."""

    name: Annotated[str, AfterValidator(_admin_name)]
    role: Role
    token_hash: Argon2Hash = Field(repr=False)


class NotificationsConfig(_Model):
    """``[notifications]``: where job completion is announced (SPEC §5.6)."""

    webhook_url: Annotated[str, AfterValidator(_http_url)] | None = None
    webhook_secret: SecretStr | None = None
    smtp_host: HostName | None = None
    smtp_port: Integer = Field(default=587, ge=1, le=65535)
    smtp_from: EmailAddress | None = Field(default=None, validate_default=True)
    smtp_to: tuple[EmailAddress, ...] = Field(default=(), validate_default=True)
    smtp_username: NonBlank | None = None
    smtp_password: SecretStr | None = Field(default=None, validate_default=True)
    smtp_starttls: bool = True

    @field_validator("webhook_secret")
    @classmethod
    def _secret_with_url(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            raise ValueError("must not be empty")
        if value is not None and info.data.get("webhook_url", "") is None:
            raise _at("webhook_url", "required when webhook_secret is set")
        return value

    @field_validator("smtp_from", "smtp_to")
    @classmethod
    def _with_smtp_host(cls, value: Any, info: ValidationInfo) -> Any:
        if "smtp_host" not in info.data:
            return value
        if info.data["smtp_host"] is None and value:
            raise _at("smtp_host", "required when smtp_from or smtp_to is set")
        if info.data["smtp_host"] is not None and not value:
            raise ValueError("required when smtp_host is set")
        return value

    @field_validator("smtp_password")
    @classmethod
    def _password_with_username(
        cls, value: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        if "smtp_username" not in info.data:
            return value
        if value is not None and not value.get_secret_value():
            raise ValueError("must not be empty")
        if value is not None and info.data["smtp_username"] is None:
            raise _at("smtp_username", "required when smtp_password is set")
        if value is None and info.data["smtp_username"] is not None:
            raise ValueError("required when smtp_username is set")
        return value

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            # A webhook URL is often itself a credential (a token in its path).
            if name == "webhook_url" and isinstance(value, str):
                yield name, _redact_url(value, keep_path=False)
            else:
                yield name, value


class AttributeMap(_Model):
    """``[sources.attributes]``: which upstream attribute feeds which user field (SPEC §2)."""

    user_name: AttributeName
    display_name: AttributeName = "cn"
    given_name: AttributeName = "givenName"
    family_name: AttributeName = "sn"
    email: AttributeName = "mail"
    sms_phone: AttributeName | None = None
    voice_phone: AttributeName | None = None
    groups: AttributeName | None = None
    policy: tuple[AttributeName, ...] = ()


class StatusConfig(_Model):
    """``[sources.status]``: which attributes say a user is disabled or expired (SPEC §4.3)."""

    disabled_attribute: AttributeName | None = None
    disabled_values: tuple[NonBlank, ...] = ()
    disabled_bitmask: Integer | None = Field(default=None, ge=1)
    expiration_attribute: AttributeName | None = None
    expiration_format: ExpirationFormat | None = Field(default=None, validate_default=True)

    @field_validator("disabled_values")
    @classmethod
    def _values_need_attribute(
        cls, value: tuple[str, ...], info: ValidationInfo
    ) -> tuple[str, ...]:
        if value and info.data.get("disabled_attribute", "") is None:
            raise _at("disabled_attribute", "required when disabled_values is set")
        return value

    @field_validator("disabled_bitmask")
    @classmethod
    def _bitmask_alone(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is None:
            return value
        if info.data.get("disabled_attribute", "") is None:
            raise _at("disabled_attribute", "required when disabled_bitmask is set")
        if info.data.get("disabled_values"):
            raise ValueError("set disabled_values or disabled_bitmask, not both")
        return value

    @field_validator("expiration_format")
    @classmethod
    def _format_with_attribute(
        cls, value: ExpirationFormat | None, info: ValidationInfo
    ) -> ExpirationFormat | None:
        if "expiration_attribute" not in info.data:
            return value
        if info.data["expiration_attribute"] is not None and value is None:
            raise ValueError(
                "required when expiration_attribute is set: generalized_time, filetime or days"
            )
        if info.data["expiration_attribute"] is None and value is not None:
            raise _at("expiration_attribute", "required when expiration_format is set")
        return value

    def mapping(self) -> StatusMapping:
        """The status engine's view of this table."""
        return StatusMapping(
            disabled_attribute=self.disabled_attribute,
            disabled_values=self.disabled_values,
            disabled_bitmask=self.disabled_bitmask,
            expiration_attribute=self.expiration_attribute,
            expiration_format=self.expiration_format,
        )


#: SPEC §4.3: the built-in mapping of `ad` sources, replaced whole by a [sources.status] table.
AD_STATUS = StatusConfig(
    disabled_attribute=AD_STATUS_MAPPING.disabled_attribute,
    disabled_bitmask=AD_STATUS_MAPPING.disabled_bitmask,
    expiration_attribute=AD_STATUS_MAPPING.expiration_attribute,
    expiration_format=AD_STATUS_MAPPING.expiration_format,
)


class _SourceBase(_Model):
    id: SourceId
    display_name: NonBlank | None = None
    enabled: bool = True


def _scheme(url: str) -> str:
    return url.partition("://")[0].lower()


class _DirectorySource(_SourceBase):
    """What `ldap` and `ad` sources share. Field order matters: validators read earlier fields."""

    urls: tuple[Annotated[str, AfterValidator(_ldap_url)], ...] = Field(min_length=1)
    start_tls: bool = False
    ca_file: ExistingFile | None = None
    tls_server_names: tuple[HostName, ...] = ()
    bind_dn: str
    bind_password: SecretStr
    roots: tuple[DistinguishedName, ...] = Field(min_length=1)
    user_object_class: AttributeName = "inetOrgPerson"
    user_filter: Annotated[str, AfterValidator(_ldap_filter)] | None = None
    id_attribute: AttributeName = "entryUUID"
    login_attribute: AttributeName = "uid"
    user_limit: Integer = Field(default=100_000, ge=1)
    allow_password_change: bool = False
    connect_timeout_seconds: Number = Field(default=5.0, gt=0, le=60, allow_inf_nan=False)
    operation_timeout_seconds: Number = Field(default=10.0, gt=0, le=600, allow_inf_nan=False)
    page_size: Integer = Field(default=500, ge=1, le=5000)
    pool_size: Integer = Field(default=4, ge=1, le=64)
    # Always filled by _attribute_defaults (user_name from login_attribute, kind defaults);
    # the default only keeps the signature honest for Python callers.
    attributes: AttributeMap = AttributeMap(user_name="uid")
    status: StatusConfig = StatusConfig()

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
        if cls._windows_bind_names and (_UPN.fullmatch(value) or _DOWNLEVEL.fullmatch(value)):
            return value
        try:
            return _distinguished_name(value)
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
        if value is not None and not _NETBIOS.fullmatch(value):
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


class Config(_Model):
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
        issues = _cross_reference_issues(self.model_dump())
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


def _same_address(a: Any, b: Any) -> bool:
    """Whether two listen addresses (ListenAddress, dump dict or text) collide; port 0 never."""
    pa, pb = _listen_pair(a), _listen_pair(b)
    return pa is not None and pa == pb and pa[1] != 0


def _listen_pair(value: Any) -> tuple[str, int] | None:
    try:
        if isinstance(value, ListenAddress):
            return value.host.lower(), value.port
        if isinstance(value, str):
            parsed = _parse_listen(value)
            return str(parsed["host"]).lower(), int(parsed["port"])
        if isinstance(value, Mapping):
            return str(value["host"]).lower(), int(value["port"])
    except (ValueError, KeyError, TypeError):
        return None
    return None


# --- loading ------------------------------------------------------------------------------


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, resolve and validate a TOML configuration file.

    Args:
        path: the file. Relative paths inside it (TLS files, a SQLite database) are read
            relative to the file's directory.
        environ: the environment for ``${NAME}`` and ``IDGATE_*`` overrides; None is an
            empty environment. Only the CLI passes ``os.environ``.

    Raises:
        ConfigError: the file cannot be read, is not valid TOML (one issue with line and
            column), or holds invalid settings (one issue per problem).
    """
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(path), f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise ConfigError([ConfigIssue(str(path), "is not UTF-8 text (TOML is UTF-8)")]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigIssue(str(path), _toml_message(exc, text))]) from None
    return parse_config(data, environ, base_dir=path.parent.resolve())


def _toml_message(exc: tomllib.TOMLDecodeError, text: str) -> str:
    message = str(exc)
    where = re.search(r" \(at line (\d+), column (\d+)\)$", message)
    if where:
        what = message[: where.start()]
        return f"invalid TOML at line {where[1]}, column {where[2]}: {what}"
    if message.endswith(" (at end of document)"):
        what = message.removesuffix(" (at end of document)")
        return f"invalid TOML at the end of the file (line {text.count(chr(10)) + 1}): {what}"
    return f"invalid TOML: {message}"


def parse_config(
    data: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    *,
    base_dir: Path | None = None,
) -> Config:
    """Validate configuration data (a parsed TOML document) into a `Config`.

    Args:
        data: the document; it is not modified.
        environ: the environment for ``${NAME}`` and ``IDGATE_*`` overrides; None is an
            empty environment.
        base_dir: what relative paths are relative to; the current directory when None.

    Raises:
        ConfigError: with every problem found (substitution, overrides, values, references).
    """
    env: Mapping[str, str] = environ if environ is not None else {}
    if not isinstance(data, Mapping):
        raise ConfigError([ConfigIssue("(config)", "must be a table")])
    raw_issues: list[tuple[tuple[str | int, ...], str]] = []
    raw = _substitute(data, env, (), raw_issues)
    origins = _apply_overrides(raw, env, raw_issues)
    for section in ("store", "http", "ldap", "sync"):
        # Validate defaults too, so that default paths resolve against base_dir.
        raw.setdefault(section, {})
    issues = [ConfigIssue(_key(loc, raw), message) for loc, message in raw_issues]
    context = {"base_dir": base_dir if base_dir is not None else Path.cwd()}
    try:
        config = Config.model_validate(raw, context=context)
    except ValidationError as exc:
        # A failed ${NAME} left an empty string behind: one problem, one issue.
        unresolved = {issue.key for issue in issues}
        issues += [i for i in _validation_issues(exc, raw, origins) if i.key not in unresolved]
        # The model's own reference checks only run when every field is valid; run them
        # on the raw data so that all problems are reported at once.
        issues += _cross_reference_issues(raw)
        raise ConfigError(issues) from None
    if issues:
        raise ConfigError(issues)
    return config


# ${NAME} with NAME a variable name; $${ is a literal ${; an unterminated ${ is an error.
_REFERENCE = re.compile(r"\$\$\{|\$\{(?P<name>[^}]*)\}|\$\{")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _substitute(
    node: Any,
    env: Mapping[str, str],
    loc: tuple[str | int, ...],
    issues: list[tuple[tuple[str | int, ...], str]],
) -> Any:
    """A copy of ``node`` with ``${NAME}`` replaced in every string value."""
    if isinstance(node, Mapping):
        return {key: _substitute(value, env, (*loc, key), issues) for key, value in node.items()}
    if isinstance(node, list | tuple):
        return [_substitute(value, env, (*loc, i), issues) for i, value in enumerate(node)]
    if not isinstance(node, str) or "${" not in node:
        return node

    def replace(match: re.Match[str]) -> str:
        if match[0] == "$${":
            return "${"
        name = match["name"]
        if name is None:
            issues.append((loc, "unterminated ${ (write $${ for a literal ${)"))
        elif not _VARIABLE.fullmatch(name):
            issues.append((loc, "invalid ${...}: a variable name is letters, digits and _"))
        elif name not in env:
            issues.append((loc, f"environment variable {name} is not set"))
        else:
            return env[name]
        return ""

    return _REFERENCE.sub(replace, node)


def _apply_overrides(
    raw: dict[str, Any],
    env: Mapping[str, str],
    issues: list[tuple[tuple[str | int, ...], str]],
) -> dict[tuple[str, str], str]:
    """Apply IDGATE_<SECTION>__<KEY> variables to ``raw``; returns (section, key) -> variable.

    Variables without ``__`` (IDGATE_CONFIG, ...) are not overrides and are ignored.
    """
    origins: dict[tuple[str, str], str] = {}
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX) or "__" not in var:
            continue
        section, _, key = var[len(ENV_PREFIX) :].lower().partition("__")
        if not section or not key or "__" in key:
            issues.append(((var,), "overrides are named IDGATE_<SECTION>__<KEY>"))
            continue
        if section not in OVERRIDE_SECTIONS:
            issues.append(
                (
                    (var,),
                    f"unknown section {section!r}: overrides apply to "
                    f"{', '.join(OVERRIDE_SECTIONS)} (use ${{NAME}} in the file for the rest)",
                )
            )
            continue
        table = raw.setdefault(section, {})
        if not isinstance(table, dict):
            continue  # the file's [section] is not a table: validation reports it
        table[key] = _override_value(_SECTION_MODELS[section], key, env[var])
        origins[(section, key)] = var
    return origins


def _override_value(model: type[BaseModel], key: str, text: str) -> Any:
    """An override's value: TOML for numbers, booleans and lists, else the text as it is."""
    field = model.model_fields.get(key)
    if field is None:
        return text
    target = _unwrap(field.annotation, None)
    if not (target in (bool, int, float) or get_origin(target) in (tuple, list)):
        # String keys take the text literally, so a password "1234" stays a string.
        return text
    if "\n" in text or "\r" in text:
        return text
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
    return value if isinstance(value, bool | int | float | list) else text


def _unwrap(annotation: Any, node: Any) -> Any:
    """Strip Annotated and Optional; for the source union, the member that ``node`` is."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
            continue
        if origin in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
            kind = node.get("kind") if isinstance(node, Mapping) else None
            for member in members:
                fields = getattr(member, "model_fields", {})
                if "kind" in fields and fields["kind"].default == kind:
                    return member
            return None
        return annotation


_SECTION_MODELS: dict[str, type[BaseModel]] = {
    "store": StoreConfig,
    "http": HttpConfig,
    "ldap": LdapConfig,
    "sync": SyncConfig,
    "notifications": NotificationsConfig,
}


# --- error reporting ----------------------------------------------------------------------

_TYPE_MESSAGES = {
    "missing": "is required",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "dict_type": "must be a table",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
    "path_type": "must be a path",
}
_BOUNDS = {
    "greater_than_equal": ("ge", "must be at least {}"),
    "less_than_equal": ("le", "must be at most {}"),
    "greater_than": ("gt", "must be greater than {}"),
    "less_than": ("lt", "must be less than {}"),
}


def _validation_issues(
    exc: ValidationError, raw: Mapping[str, Any], origins: Mapping[tuple[str, str], str]
) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    for error in exc.errors(include_url=False):
        kind = error["type"]
        context = error.get("ctx") or {}
        if kind == "idgate_issues":
            issues += [ConfigIssue(key, message) for key, message in context["issues"]]
            continue
        if kind == "too_short" and len(error.get("input") or ()) >= context.get("min_length", 0):
            continue  # pydantic counts only the valid items: the invalid ones are reported
        loc = _strip_tag(tuple(error["loc"]), raw)
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            loc = (*loc, "kind")
        elif kind == "idgate_sibling":
            loc = (*loc[:-1], context["field"])
        message = _message(error, loc, raw)
        origin = origins.get((str(loc[0]), str(loc[1]))) if len(loc) >= 2 else None
        if origin:
            message += f" (from {origin})"
        issues.append(ConfigIssue(_key(loc, raw), message))
    return issues


def _strip_tag(loc: tuple[str | int, ...], raw: Mapping[str, Any]) -> tuple[str | int, ...]:
    """Drop the discriminator tag pydantic puts in a source's error location."""
    if len(loc) > 2 and loc[0] == "sources" and isinstance(loc[1], int) and loc[2] in SOURCE_KINDS:
        return (*loc[:2], *loc[3:])
    return loc


def _message(error: ErrorDetails, loc: tuple[str | int, ...], raw: Mapping[str, Any]) -> str:
    kind: str = error["type"]
    context: Mapping[str, Any] = error.get("ctx") or {}
    kinds = ", ".join(SOURCE_KINDS)
    if kind == "union_tag_invalid":
        return f"unknown kind; valid kinds: {kinds}"
    if kind == "union_tag_not_found":
        return f"is required: one of {kinds}"
    if kind == "extra_forbidden":
        known = _known_keys(loc[:-1], raw)
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        return f"unknown key (did you mean {close[0]}?)" if close else "unknown key"
    if kind == "idgate_sibling":
        return str(context["message"])
    if kind == "value_error":
        return str(context.get("error", error["msg"]))
    if kind in _BOUNDS:
        bound, text = _BOUNDS[kind]
        limit = context.get(bound)
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)  # "at most 60", not "at most 60.0"
        message = text.format(limit)
        number = error.get("input")
        # Numbers only: a bound never applies to a secret, and a string is never repeated.
        if isinstance(number, int | float) and not isinstance(number, bool):
            message += f" (got {number})"
        return message
    if kind in ("too_short", "string_too_short"):
        minimum = context.get("min_length")
        return "must not be empty" if minimum == 1 else f"must have at least {minimum} items"
    if kind in ("literal_error", "enum"):
        return f"must be {context.get('expected')}"
    return _TYPE_MESSAGES.get(kind, str(error["msg"]))


def _known_keys(loc: tuple[str | int, ...], raw: Mapping[str, Any]) -> list[str]:
    """The keys the table at ``loc`` accepts, for "did you mean" hints."""
    annotation: Any = Config
    node: Any = raw
    for part in loc:
        annotation = _unwrap(annotation, node)
        if isinstance(part, int):
            args = get_args(annotation)
            annotation = args[0] if args else None
            node = node[part] if isinstance(node, list) and part < len(node) else None
        else:
            fields = getattr(annotation, "model_fields", None)
            if not fields or part not in fields:
                return []
            annotation = fields[part].annotation
            node = node.get(part) if isinstance(node, Mapping) else None
    return list(getattr(_unwrap(annotation, node), "model_fields", {}))


def _labels(
    raw: Mapping[str, Any], section: str, field: str, pattern: re.Pattern[str]
) -> dict[int, str]:
    """Index -> name for the entries of an array of tables that have a valid, unique name."""
    items = raw.get(section)
    if not isinstance(items, list | tuple):
        return {}
    names = [item.get(field) if isinstance(item, Mapping) else None for item in items]
    return {
        i: name
        for i, name in enumerate(names)
        if isinstance(name, str) and pattern.fullmatch(name) and names.count(name) == 1
    }


def _key(loc: Sequence[str | int], raw: Mapping[str, Any]) -> str:
    """The dotted path an operator reads: sources.corp.urls[1], admins.ops.role, sources[2]."""
    key = ""
    for position, part in enumerate(loc):
        if isinstance(part, int):
            label = None
            if position == 1 and loc[0] == "sources":
                label = _labels(raw, "sources", "id", _SOURCE_ID).get(part)
            elif position == 1 and loc[0] == "admins":
                label = _labels(raw, "admins", "name", _ADMIN_NAME).get(part)
            key += f".{label}" if label else f"[{part}]"
        else:
            key += f".{part}" if key else str(part)
    return key or "(config)"


def _cross_reference_issues(raw: Mapping[str, Any]) -> list[ConfigIssue]:
    """Checks across sections, on raw data (or a model dump); tolerant of malformed shapes."""
    issues: list[ConfigIssue] = []
    sources = _items(raw.get("sources"))
    ldap = _table(raw.get("ldap"))

    def issue(loc: Sequence[str | int], message: str) -> None:
        issues.append(ConfigIssue(_key(loc, raw), message))

    kinds: dict[str, Any] = {}
    for i, source in enumerate(sources):
        source_id = source.get("id")
        if isinstance(source_id, str):
            if source_id in kinds:
                first = next(j for j, s in enumerate(sources) if s.get("id") == source_id)
                issue(
                    ("sources", i, "id"),
                    f"duplicate source id {source_id!r} (first used by sources[{first}])",
                )
            else:
                kinds[source_id] = source.get("kind")

    for i, admin in _first_duplicates(_items(raw.get("admins")), lambda a: _str(a.get("name"))):
        issue(("admins", i, "name"), f"duplicate admin name {admin.get('name')!r}")

    accounts = _items(ldap.get("service_accounts"))
    for i, _ in _first_duplicates(accounts, lambda a: _dn_key_or_none(a.get("dn"))):
        issue(("ldap", "service_accounts", i, "dn"), "duplicate service account DN")

    default_sources = ldap.get("default_sources")
    if isinstance(default_sources, list | tuple):
        seen: set[str] = set()
        for i, source_id in enumerate(default_sources):
            if not isinstance(source_id, str) or not _SOURCE_ID.fullmatch(source_id):
                continue  # not an id at all: reported by validation
            loc: tuple[str | int, ...] = ("ldap", "default_sources", i)
            if source_id in seen:
                issue(loc, f"source {source_id!r} is listed twice")
            elif source_id not in kinds:
                issue(loc, f"no source has id {source_id!r}")
            elif kinds[source_id] not in BIND_KINDS:
                issue(
                    loc,
                    f"source {source_id!r} is an entra source: Entra ID sends no"
                    " passwords, so nobody can bind there",
                )
            seen.add(source_id)

    claimed: dict[str, str] = {}
    for i, source in enumerate(sources):
        if source.get("kind") != "ad":
            continue
        label = _key(("sources", i), raw)
        # Bind names are routed by UPN suffix and NetBIOS domain (SPEC §6): each names one source.
        names: list[tuple[tuple[str | int, ...], str]] = [
            (("sources", i, "upn_suffixes", j), suffix)
            for j, suffix in enumerate(_strings(source.get("upn_suffixes")))
        ]
        netbios = source.get("netbios_domain")
        if isinstance(netbios, str):
            names.append((("sources", i, "netbios_domain"), "\\" + netbios))
        for name_loc, name in names:
            folded = name.casefold().rstrip(".")
            if folded in claimed and claimed[folded] != label:
                issue(
                    name_loc, f"already claimed by {claimed[folded]}: bind names would be ambiguous"
                )
            claimed.setdefault(folded, label)

    front_tls = bool(ldap.get("tls_cert")) and bool(ldap.get("tls_key"))
    for i, source in enumerate(sources):
        if source.get("allow_password_change") is True and not front_tls:
            issue(
                ("sources", i, "allow_password_change"),
                "requires TLS on the LDAP front too (SPEC §2): set ldap.tls_cert and ldap.tls_key",
            )

    http = _table(raw.get("http"))
    for field in ("listen", "ldaps_listen"):
        if _same_address(http.get("listen"), ldap.get(field)):
            issue(("ldap", field), "must differ from http.listen")
    return issues


def _table(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _items(value: Any) -> list[Mapping[str, Any]]:
    """The tables of an array of tables; anything else becomes an empty mapping."""
    if not isinstance(value, list | tuple):
        return []
    return [item if isinstance(item, Mapping) else {} for item in value]


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list | tuple) else []


def _first_duplicates(
    items: Sequence[Mapping[str, Any]], key: Callable[[Mapping[str, Any]], str | None]
) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """Every item whose key an earlier item already had (None keys are skipped)."""
    seen: set[Any] = set()
    for i, item in enumerate(items):
        value = key(item)
        if value is None:
            continue
        if value in seen:
            yield i, item
        seen.add(value)


def _dn_key_or_none(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return dn_key(value)
    except InvalidInput:
        return None
