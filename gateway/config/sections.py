"""The plain tables: store, http, ldap, sync, admins and notifications.

Secrets stay out of ``repr``: hashes are left out, the store URL and the webhook URL are shown
redacted, and passwords are `pydantic.SecretStr`.
"""

import re
from collections.abc import Iterator
from datetime import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, SecretStr, ValidationInfo, field_validator

from gateway.config.checks import SCHEME, admin_name, base_dir, base_url, http_url
from gateway.config.errors import sibling_error
from gateway.config.fields import (
    Argon2Hash,
    DisableCount,
    DisablePercent,
    DistinguishedName,
    EmailAddress,
    ExistingFile,
    HostName,
    Integer,
    Model,
    Network,
    NonBlank,
    Number,
    SourceId,
)
from gateway.config.listen import ListenAddress, same_address
from gateway.engine.types import Role


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


class StoreConfig(Model):
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
        if not sep or not SCHEME.fullmatch(scheme):
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
            path = str((base_dir(info) / path).resolve())
        return f"sqlite:///{path}{qmark}{query}"

    @property
    def redacted_url(self) -> str:
        """``url`` with any password replaced by ``***``, for logs."""
        return _redact_url(self.url, keep_path=True)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield (name, self.redacted_url) if name == "url" else (name, value)


class HttpConfig(Model):
    """``[http]``: the SCIM and admin front."""

    listen: ListenAddress = ListenAddress(host="127.0.0.1", port=8080)
    public_base_url: Annotated[str, AfterValidator(base_url)] | None = None

    @property
    def host(self) -> str:
        return self.listen.host

    @property
    def port(self) -> int:
        return self.listen.port


class ServiceAccount(Model):
    """``[[ldap.service_accounts]]``: who may bind to the LDAP front and search (SPEC §6)."""

    dn: DistinguishedName
    password_hash: Argon2Hash = Field(repr=False)
    #: Where the account may bind from (CIDR networks); empty: from anywhere. A bind from
    #: elsewhere is refused before its password is looked at.
    allowed_networks: tuple[Network, ...] = ()


class LdapConfig(Model):
    """``[ldap]``: the LDAP front (SPEC §6)."""

    listen: ListenAddress = ListenAddress(host="127.0.0.1", port=3389)
    tls_cert: ExistingFile | None = None
    tls_key: ExistingFile | None = Field(default=None, validate_default=True)
    ldaps_listen: ListenAddress | None = None
    suffix: DistinguishedName = "dc=idgate"
    default_sources: tuple[SourceId, ...] = ()
    allow_anonymous_search: bool = False
    service_accounts: tuple[ServiceAccount, ...] = ()
    size_limit: Integer = Field(default=1000, ge=1, le=1_000_000)
    time_limit_seconds: Integer = Field(default=30, ge=1, le=3600)
    max_message_bytes: Integer = Field(default=1_048_576, ge=4096, le=64 * 1_048_576)
    workers: Integer = Field(default=32, ge=1, le=1024)
    idle_timeout_seconds: Integer = Field(default=900, ge=0)

    @field_validator("tls_key")
    @classmethod
    def _key_with_cert(cls, key: Path | None, info: ValidationInfo) -> Path | None:
        if "tls_cert" not in info.data:  # tls_cert itself is invalid: reported there
            return key
        cert = info.data["tls_cert"]
        if cert is not None and key is None:
            raise ValueError("required when tls_cert is set")
        if cert is None and key is not None:
            raise sibling_error("tls_cert", "required when tls_key is set")
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
        if listen is not None and same_address(listen, value):
            raise ValueError("must differ from listen")
        return value

    @property
    def tls(self) -> bool:
        """Whether the front offers StartTLS (and LDAPS when ``ldaps_listen`` is set)."""
        return self.tls_cert is not None and self.tls_key is not None


class SyncConfig(Model):
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
    #: When (UTC, "HH:MM") the daily refresh and cleanup run (SPEC §5.4, §5.5).
    daily_run_at: time = time(3, 0)
    #: Whether this process runs the daily jobs' scheduler (each runs once a day across every
    #: process sharing the store whatever this says; false leaves it to the others).
    scheduler: bool = True
    #: How long a job's lease lasts unrenewed: the longest a dead process holds its job.
    job_lease_seconds: Integer = Field(default=60, ge=3, le=3600)
    #: The mass-disable guard (SPEC §5.3): a bulk run or refresh batch that would disable more
    #: of a source's active users than this many, or this percentage of them, disables none
    #: and waits for a super admin. `false` switches a threshold off.
    max_disable_count: DisableCount = 500
    max_disable_percent: DisablePercent = 20.0

    @field_validator("daily_run_at", mode="before")
    @classmethod
    def _hour_minute(cls, value: Any) -> Any:
        if isinstance(value, str) and not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", value):
            raise ValueError('must be a UTC time of day as "HH:MM", e.g. "03:00"')
        return value


class AdminConfig(Model):
    """``[[admins]]``: an administrator of the admin API (SPEC §4.4)."""

    name: Annotated[str, AfterValidator(admin_name)]
    role: Role
    token_hash: Argon2Hash = Field(repr=False)


class NotificationsConfig(Model):
    """``[notifications]``: where job completion is announced (SPEC §5.6)."""

    webhook_url: Annotated[str, AfterValidator(http_url)] | None = None
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
            raise sibling_error("webhook_url", "required when webhook_secret is set")
        return value

    @field_validator("smtp_from", "smtp_to")
    @classmethod
    def _with_smtp_host(cls, value: Any, info: ValidationInfo) -> Any:
        if "smtp_host" not in info.data:
            return value
        if info.data["smtp_host"] is None and value:
            raise sibling_error("smtp_host", "required when smtp_from or smtp_to is set")
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
            raise sibling_error("smtp_username", "required when smtp_password is set")
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
