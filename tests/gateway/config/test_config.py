"""gateway.config: loading, defaults, bounds, references, environment, and secret hygiene."""

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr, ValidationError

from gateway.auth.secrets import hash_secret
from gateway.config import (
    AD_STATUS,
    AdminConfig,
    AdSource,
    AttributeMap,
    Config,
    ConfigError,
    ConfigIssue,
    EntraSource,
    HttpConfig,
    LdapConfig,
    LdapSource,
    ListenAddress,
    LocalSource,
    NotificationsConfig,
    ScimSource,
    ServiceAccount,
    StatusConfig,
    StoreConfig,
    SyncConfig,
    load_config,
    parse_config,
)
from gateway.engine.statusmap import AD_STATUS_MAPPING, ExpirationFormat, StatusMapping
from gateway.engine.types import Role

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = ROOT / "tests" / "samples" / "config"
DOCS = ROOT / "docs" / "configuration.md"

# Distinctive values: if one shows up in a repr or an error message, a secret leaked.
LEAK = "Xyzzy-S3cret-7Q"
FULL_ENV = {
    "CORP_BIND_PASSWORD": f"corp-{LEAK}",
    "AD_BIND_PASSWORD": f"ad-{LEAK}",
    "WEBHOOK_SECRET": f"webhook-{LEAK}",
    "SMTP_PASSWORD": f"smtp-{LEAK}",
}


@pytest.fixture(scope="module")
def token_hash() -> str:
    """One argon2 hash for the whole module: hashing is slow by design."""
    return hash_secret("a-test-token")


@pytest.fixture
def full_config_path(tmp_path: Path) -> Path:
    """full.toml in a directory that also holds the TLS files it names (relative paths)."""
    shutil.copy(SAMPLES / "full.toml", tmp_path / "full.toml")
    for name in ("tls.pem", "tls.key", "corp-ca.pem", "ad-ca.pem"):
        (tmp_path / name).write_text("not checked for content\n")
    return tmp_path / "full.toml"


def ldap_source(**overrides: Any) -> dict[str, Any]:
    source = {
        "id": "corp",
        "kind": "ldap",
        "urls": ["ldap://ldap.example.org"],
        "bind_dn": "cn=idgate,ou=services,dc=example,dc=org",
        "bind_password": "bind-pw",
        "roots": ["ou=people,dc=example,dc=org"],
    }
    source.update(overrides)
    return source


def ad_source(**overrides: Any) -> dict[str, Any]:
    ad = {
        "id": "ad",
        "kind": "ad",
        "urls": ["ldaps://dc1.ad.example.org"],
        "roots": ["OU=Staff,DC=ad,DC=example,DC=org"],
    }
    return ldap_source(**{**ad, **overrides})


def problems(data: dict[str, Any], env: dict[str, str] | None = None, **kw: Any) -> list[str]:
    """The issues parse_config reports, as "key: message" lines; fails if it accepts."""
    with pytest.raises(ConfigError) as caught:
        parse_config(data, env, **kw)
    return [str(issue) for issue in caught.value.issues]


def keys(data: dict[str, Any], env: dict[str, str] | None = None, **kw: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, env, **kw)
    return [issue.key for issue in caught.value.issues]


# --- the full example and the defaults ------------------------------------------------------


def test_full_example_loads_every_key(full_config_path: Path) -> None:
    config = load_config(full_config_path, FULL_ENV)
    base = full_config_path.parent

    assert config.store == StoreConfig(
        url="postgresql+psycopg://idgate@db.example.org/idgate", pool_size=20, echo=False
    )
    assert (config.http.host, config.http.port) == ("0.0.0.0", 8443)
    assert config.http.public_base_url == "https://idgate.example.org"

    ldap = config.ldap
    assert ldap.listen == ListenAddress(host="::1", port=3389)
    assert str(ldap.listen) == "[::1]:3389"
    assert ldap.ldaps_listen == ListenAddress(host="127.0.0.1", port=3636)
    assert (ldap.tls_cert, ldap.tls_key) == (base / "tls.pem", base / "tls.key")
    assert ldap.tls is True
    assert ldap.default_sources == ("corp", "ad", "staff")
    assert ldap.suffix == "dc=idgate,dc=example,dc=org"
    assert ldap.allow_anonymous_search is False
    assert [a.dn for a in ldap.service_accounts] == ["cn=radius,ou=services,dc=idgate"]
    assert ldap.service_accounts[0].password_hash.startswith("$argon2id$")

    assert config.sync == SyncConfig(
        jit_interval_seconds=120,
        jit_deadline_seconds=1.5,
        refresh_after_days=14,
        refresh_batch=500,
        cleanup_never_used_days=45,
        pending_deletion_days=10,
        failed_auth_limit=3,
        failed_auth_window_seconds=600,
        details_limit=200,
    )

    notes = config.notifications
    assert notes is not None
    assert notes.webhook_url == "https://hooks.example.org/idgate/T0KEN"
    assert notes.webhook_secret is not None
    assert notes.webhook_secret.get_secret_value() == FULL_ENV["WEBHOOK_SECRET"]
    assert (notes.smtp_host, notes.smtp_port) == ("smtp.example.org", 587)
    assert notes.smtp_from == "idgate <idgate@example.org>"
    assert notes.smtp_to == ("identity-team@example.org",)
    assert notes.smtp_username == "idgate"
    assert notes.smtp_password is not None
    assert notes.smtp_password.get_secret_value() == FULL_ENV["SMTP_PASSWORD"]
    assert notes.smtp_starttls is True

    assert [(a.name, a.role) for a in config.admins] == [
        ("ops", Role.SUPER_ADMIN),
        ("helpdesk", Role.HELP_DESK),
    ]

    assert [(s.id, s.kind) for s in config.sources] == [
        ("corp", "ldap"),
        ("ad", "ad"),
        ("staff", "local"),
        ("hr", "scim"),
        ("entra", "entra"),
    ]
    corp = config.source("corp")
    assert isinstance(corp, LdapSource)
    assert corp.display_name == "Corporate OpenLDAP"
    assert corp.enabled is True
    assert corp.urls == ("ldap://ldap1.example.org", "ldap://ldap2.example.org:389")
    assert corp.start_tls is True
    assert corp.uses_tls is True
    assert corp.ca_file == base / "corp-ca.pem"
    assert corp.tls_server_names == ("ldap.example.org",)
    assert corp.bind_dn == "cn=idgate,ou=services,dc=example,dc=org"
    assert corp.bind_password.get_secret_value() == FULL_ENV["CORP_BIND_PASSWORD"]
    assert corp.roots == ("ou=people,dc=example,dc=org", "ou=partners,dc=example,dc=org")
    assert corp.user_object_class == "inetOrgPerson"
    assert corp.user_filter == "(!(ou=contractors))"
    assert (corp.id_attribute, corp.login_attribute) == ("entryUUID", "uid")
    assert corp.user_limit == 50000
    assert corp.allow_password_change is True
    assert (corp.connect_timeout_seconds, corp.operation_timeout_seconds) == (3.0, 20.0)
    assert (corp.page_size, corp.pool_size) == (1000, 8)
    assert corp.attributes == AttributeMap(
        user_name="uid",
        display_name="cn",
        given_name="givenName",
        family_name="sn",
        email="mail",
        sms_phone="mobile",
        voice_phone="telephoneNumber",
        groups="memberOf",
        policy=("departmentNumber", "title"),
    )
    assert corp.status_mapping() == StatusMapping(
        disabled_attribute="nsAccountLock",
        disabled_values=("TRUE",),
        expiration_attribute="shadowExpire",
        expiration_format=ExpirationFormat.DAYS,
    )

    ad = config.source("ad")
    assert isinstance(ad, AdSource)
    assert ad.bind_dn == "svc-idgate@ad.example.org"
    assert ad.upn_suffixes == ("ad.example.org", "example.com")
    assert ad.netbios_domain == "EXAMPLE"
    # A [sources.status] table replaces the built-in AD mapping whole.
    assert ad.status_mapping() == StatusMapping(
        disabled_attribute="userAccountControl", disabled_bitmask=2
    )

    hr = config.source("hr")
    assert isinstance(hr, ScimSource)
    assert hr.hard_delete is True
    entra = config.source("entra")
    assert isinstance(entra, EntraSource)
    assert entra.enabled is False
    assert isinstance(config.source("staff"), LocalSource)


def test_empty_config_has_every_default(tmp_path: Path) -> None:
    config = parse_config({}, {}, base_dir=tmp_path)

    assert config.store.url == f"sqlite:///{tmp_path / 'idgate.db'}"
    assert (config.store.pool_size, config.store.echo) == (10, False)
    assert config.http.listen == ListenAddress(host="127.0.0.1", port=8080)
    assert config.http.public_base_url is None
    assert config.ldap == LdapConfig(
        listen=ListenAddress(host="127.0.0.1", port=3389),
        tls_cert=None,
        tls_key=None,
        ldaps_listen=None,
        suffix="dc=idgate",
        default_sources=(),
        allow_anonymous_search=False,
        service_accounts=(),
    )
    assert config.ldap.tls is False
    sync = config.sync
    assert sync.jit_interval_seconds == 300
    assert sync.jit_deadline_seconds == 2.0
    assert sync.refresh_after_days == 30
    assert sync.refresh_batch == 1000
    assert sync.cleanup_never_used_days == 30
    assert sync.pending_deletion_days == 7
    assert sync.failed_auth_limit == 5
    assert sync.failed_auth_window_seconds == 300
    assert sync.details_limit == 400
    assert config.notifications is None
    assert config.admins == ()
    assert config.sources == ()


def test_relative_sqlite_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "idgate.toml").write_text('[store]\nurl = "sqlite:///data/gw.db"\n')
    config = load_config(tmp_path / "idgate.toml")
    assert config.store.url == f"sqlite:///{tmp_path / 'data' / 'gw.db'}"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:////var/lib/idgate/idgate.db", "sqlite:////var/lib/idgate/idgate.db"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("postgresql://u@db/idgate", "postgresql+psycopg://u@db/idgate"),
        ("postgresql+psycopg://u@db:5433/idgate", "postgresql+psycopg://u@db:5433/idgate"),
        ("postgresql+psycopg:///idgate", "postgresql+psycopg:///idgate"),
    ],
)
def test_store_urls(url: str, expected: str) -> None:
    assert parse_config({"store": {"url": url}}).store.url == expected


@pytest.mark.parametrize(
    "url", ["mysql://root@db/idgate", "postgres://u@db/x", "postgresql+psycopg2://u@db/x"]
)
def test_unsupported_store_scheme_names_the_supported_ones(url: str) -> None:
    [problem] = problems({"store": {"url": url}})
    assert problem.startswith("store.url: unsupported scheme")
    assert "sqlite:///" in problem and "postgresql+psycopg://" in problem


@pytest.mark.parametrize("url", ["idgate.db", "sqlite://", "sqlite:///", "postgresql+psycopg://"])
def test_malformed_store_urls(url: str) -> None:
    assert keys({"store": {"url": url}}) == ["store.url"]


def test_ldap_source_defaults() -> None:
    source = parse_config({"sources": [ldap_source()]}).source("corp")
    assert isinstance(source, LdapSource)
    assert source.display_name is None
    assert source.enabled is True
    assert source.start_tls is False
    assert source.ca_file is None
    assert source.tls_server_names == ()
    assert source.user_object_class == "inetOrgPerson"
    assert source.user_filter is None
    assert (source.id_attribute, source.login_attribute) == ("entryUUID", "uid")
    assert source.user_limit == 100_000
    assert source.allow_password_change is False
    assert (source.connect_timeout_seconds, source.operation_timeout_seconds) == (5.0, 10.0)
    assert (source.page_size, source.pool_size) == (500, 4)
    assert source.attributes == AttributeMap(
        user_name="uid",
        display_name="cn",
        given_name="givenName",
        family_name="sn",
        email="mail",
        sms_phone=None,
        voice_phone=None,
        groups=None,
        policy=(),
    )
    # No status mapped: every in-scope user is enabled (SPEC §4.3).
    assert source.status_mapping() == StatusMapping()
    assert source.uses_tls is False


def test_ad_source_defaults() -> None:
    source = parse_config({"sources": [ad_source()]}).source("ad")
    assert isinstance(source, AdSource)
    assert source.user_object_class == "user"
    assert (source.id_attribute, source.login_attribute) == ("objectGUID", "sAMAccountName")
    assert source.attributes.user_name == "sAMAccountName"
    assert source.attributes.display_name == "displayName"
    assert source.attributes.groups == "memberOf"
    assert source.upn_suffixes == ()
    assert source.netbios_domain is None
    assert source.status == AD_STATUS
    assert source.status_mapping() == AD_STATUS_MAPPING


def test_user_name_follows_login_attribute_unless_set() -> None:
    config = parse_config(
        {
            "sources": [
                ldap_source(id="a", login_attribute="mail"),
                ldap_source(id="b", login_attribute="mail", attributes={"user_name": "uid"}),
            ]
        }
    )
    assert config.source("a").attributes.user_name == "mail"  # type: ignore[union-attr]
    assert config.source("b").attributes.user_name == "uid"  # type: ignore[union-attr]


def test_provisioned_and_local_source_defaults(token_hash: str) -> None:
    config = parse_config(
        {
            "sources": [
                {"id": "hr", "kind": "scim", "token_hash": token_hash},
                {"id": "entra", "kind": "entra", "token_hash": token_hash},
                {"id": "staff", "kind": "local"},
            ]
        }
    )
    hr, entra, staff = config.sources
    assert isinstance(hr, ScimSource) and hr.hard_delete is False and hr.enabled is True
    assert isinstance(entra, EntraSource) and entra.hard_delete is False
    assert isinstance(staff, LocalSource) and staff.display_name is None


def test_notifications_defaults() -> None:
    notes = parse_config({"notifications": {}}).notifications
    assert notes == NotificationsConfig(
        webhook_url=None,
        webhook_secret=None,
        smtp_host=None,
        smtp_port=587,
        smtp_from=None,
        smtp_to=(),
        smtp_username=None,
        smtp_password=None,
        smtp_starttls=True,
    )


# --- the acceptance case and error reporting ------------------------------------------------


def test_wrong_key_wrong_type_and_low_refresh_give_exactly_three_issues() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(SAMPLES / "three-issues.toml")
    issues = caught.value.issues
    assert len(issues) == 3
    assert {issue.key for issue in issues} == {
        "store.pool_size",
        "sync.refresh_afterdays",
        "sync.refresh_after_days",
    }
    assert ConfigIssue("store.pool_size", "must be an integer") in issues
    assert ConfigIssue("sync.refresh_after_days", "must be at least 7 (got 3)") in issues
    [unknown] = [i for i in issues if i.key == "sync.refresh_afterdays"]
    assert unknown.message.startswith("unknown key")
    # str() is one "key: message" line per issue.
    assert str(caught.value).splitlines() == [str(i) for i in issues]


def test_unknown_key_suggests_a_close_one() -> None:
    assert problems({"sync": {"refresh_afterdays": 30}}) == [
        "sync.refresh_afterdays: unknown key (did you mean refresh_after_days?)"
    ]
    assert problems({"stor": {}}) == ["stor: unknown key (did you mean store?)"]
    assert problems({"store": {"colour": "blue"}}) == ["store.colour: unknown key"]


def test_unknown_key_in_a_source_table_is_named_by_source_id() -> None:
    assert problems({"sources": [ldap_source(attributes={"mial": "mail"})]}) == [
        "sources.corp.attributes.mial: unknown key (did you mean email?)"
    ]
    # An AD-only key is unknown on an ldap source.
    assert keys({"sources": [ldap_source(upn_suffixes=["example.org"])]}) == [
        "sources.corp.upn_suffixes"
    ]


def test_source_without_a_usable_id_is_named_by_index(token_hash: str) -> None:
    data = {
        "sources": [
            ldap_source(),
            {"kind": "scim", "token_hash": token_hash},
            {"id": "Bad Id", "kind": "local"},
        ]
    }
    assert problems(data) == [
        "sources[1].id: is required",
        "sources[2].id: must be 1-63 characters: lowercase letters, digits, '_' and '-',"
        " starting with a letter or digit (it appears in URLs and DNs)",
    ]


def test_admins_are_named_by_name_and_service_accounts_by_index(token_hash: str) -> None:
    data = {
        "admins": [{"name": "ops", "role": "root", "token_hash": token_hash}],
        "ldap": {"service_accounts": [{"dn": "cn=radius,dc=idgate", "password_hash": "x"}]},
    }
    assert keys(data) == ["ldap.service_accounts[0].password_hash", "admins.ops.role"]
    assert "admins.ops.role: must be 'super_admin' or 'help_desk'" in problems(data)


def test_duplicate_source_ids_are_named() -> None:
    data = {"sources": [ldap_source(), {"id": "corp", "kind": "local"}]}
    assert problems(data) == [
        "sources[1].id: duplicate source id 'corp' (first used by sources[0])"
    ]


def test_duplicate_admin_names_and_service_account_dns(token_hash: str) -> None:
    admin = {"name": "ops", "role": "super_admin", "token_hash": token_hash}
    account = {"dn": "cn=radius,dc=idgate", "password_hash": token_hash}
    data = {
        "admins": [admin, admin],
        "ldap": {"service_accounts": [account, {**account, "dn": "CN=Radius, DC=idgate"}]},
    }
    assert problems(data) == [
        "admins[1].name: duplicate admin name 'ops'",
        "ldap.service_accounts[1].dn: duplicate service account DN",
    ]


def test_unknown_kind_lists_the_valid_ones() -> None:
    assert problems({"sources": [{"id": "x", "kind": "novell"}]}) == [
        "sources.x.kind: unknown kind; valid kinds: ad, entra, ldap, local, scim"
    ]
    assert problems({"sources": [{"id": "x"}]}) == [
        "sources.x.kind: is required: one of ad, entra, ldap, local, scim"
    ]


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(SAMPLES / "many-errors.toml")
    assert [i.key for i in caught.value.issues] == [
        "sources[0].urls[0]",
        "sources.x.kind",
        "sources.hr.token_hash",
        "sources[1].id",
        "ldap.default_sources[1]",
    ]


def test_booleans_are_not_numbers() -> None:
    assert problems({"sync": {"refresh_batch": True, "jit_deadline_seconds": False}}) == [
        "sync.jit_deadline_seconds: must be a number",
        "sync.refresh_batch: must be an integer",
    ]
    data = {"sources": [ldap_source(page_size=True, status={"disabled_bitmask": True})]}
    assert keys(data) == ["sources.corp.page_size", "sources.corp.status.disabled_bitmask"]


def test_a_table_where_a_value_belongs_and_vice_versa() -> None:
    assert problems({"sync": 5, "sources": {"id": "x"}}) == [
        "sync: must be a table",
        "sources: must be a list",
    ]


def test_config_error_is_not_chained_to_pydantic() -> None:
    # A traceback of the cause would print pydantic's input_value, secrets included.
    with pytest.raises(ConfigError) as caught:
        parse_config({"sync": {"refresh_after_days": 3}})
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__ is True


# --- bounds ---------------------------------------------------------------------------------

SYNC_BOUNDS = [
    ("jit_interval_seconds", -1, "must be at least 0 (got -1)", 0),
    ("jit_deadline_seconds", 0, "must be greater than 0 (got 0)", 0.001),
    ("jit_deadline_seconds", 61, "must be at most 60 (got 61)", 60),
    ("refresh_after_days", 3, "must be at least 7 (got 3)", 7),
    ("refresh_batch", 0, "must be at least 1 (got 0)", 1),
    ("refresh_batch", 100_001, "must be at most 100000 (got 100001)", 100_000),
    ("cleanup_never_used_days", 0, "must be at least 1 (got 0)", 1),
    ("pending_deletion_days", 0, "must be at least 1 (got 0)", 1),
    ("failed_auth_limit", 0, "must be at least 1 (got 0)", 1),
    ("failed_auth_window_seconds", 0, "must be at least 1 (got 0)", 1),
    ("details_limit", 0, "must be at least 1 (got 0)", 1),
    ("details_limit", 401, "must be at most 400 (got 401)", 400),
]


@pytest.mark.parametrize(("key", "bad", "message", "edge"), SYNC_BOUNDS)
def test_sync_bounds(key: str, bad: float, message: str, edge: float) -> None:
    assert problems({"sync": {key: bad}}) == [f"sync.{key}: {message}"]
    assert getattr(parse_config({"sync": {key: edge}}).sync, key) == edge


def test_sync_rejects_a_non_finite_deadline() -> None:
    assert keys({"sync": {"jit_deadline_seconds": float("nan")}}) == ["sync.jit_deadline_seconds"]


@pytest.mark.parametrize(
    ("section", "key", "bad", "message", "edge"),
    [
        ("store", "pool_size", 0, "must be at least 1 (got 0)", 1),
        ("store", "pool_size", 201, "must be at most 200 (got 201)", 200),
        ("notifications", "smtp_port", 0, "must be at least 1 (got 0)", 1),
        ("notifications", "smtp_port", 65536, "must be at most 65535 (got 65536)", 65535),
    ],
)
def test_section_bounds(section: str, key: str, bad: int, message: str, edge: int) -> None:
    assert problems({section: {key: bad}}) == [f"{section}.{key}: {message}"]
    assert getattr(getattr(parse_config({section: {key: edge}}), section), key) == edge


SOURCE_BOUNDS = [
    ("user_limit", 0, "must be at least 1 (got 0)", 1),
    ("connect_timeout_seconds", 0, "must be greater than 0 (got 0)", 60),
    ("connect_timeout_seconds", 61, "must be at most 60 (got 61)", 0.5),
    ("operation_timeout_seconds", 0, "must be greater than 0 (got 0)", 600),
    ("operation_timeout_seconds", 601, "must be at most 600 (got 601)", 0.5),
    ("page_size", 0, "must be at least 1 (got 0)", 1),
    ("page_size", 5001, "must be at most 5000 (got 5001)", 5000),
    ("pool_size", 0, "must be at least 1 (got 0)", 1),
    ("pool_size", 65, "must be at most 64 (got 65)", 64),
]


@pytest.mark.parametrize(("key", "bad", "message", "edge"), SOURCE_BOUNDS)
def test_directory_source_bounds(key: str, bad: float, message: str, edge: float) -> None:
    assert problems({"sources": [ldap_source(**{key: bad})]}) == [f"sources.corp.{key}: {message}"]
    config = parse_config({"sources": [ldap_source(**{key: edge})]})
    assert getattr(config.source("corp"), key) == edge


def test_disabled_bitmask_must_be_positive() -> None:
    data = {"sources": [ldap_source(status={"disabled_attribute": "flags", "disabled_bitmask": 0})]}
    assert problems(data) == ["sources.corp.status.disabled_bitmask: must be at least 1 (got 0)"]


# --- listen addresses -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("127.0.0.1:8080", "127.0.0.1", 8080),
        ("[::1]:8080", "::1", 8080),
        ("[::]:389", "::", 389),
        ("gateway.example.org:443", "gateway.example.org", 443),
        ("localhost:0", "localhost", 0),
    ],
)
def test_listen_addresses(text: str, host: str, port: int) -> None:
    http = parse_config({"http": {"listen": text}}).http
    assert (http.host, http.port) == (host, port)
    assert str(http.listen) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("8080", "must be HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080"),
        (":8080", "must be HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080"),
        ("::1:8080", "IPv6 addresses go in brackets, e.g. [::1]:8080"),
        ("[nope]:8080", "must hold an IPv6 address between the brackets"),
        ("127.0.0.1:99999", "port must be a number from 0 to 65535"),
        ("127.0.0.1:http", "port must be a number from 0 to 65535"),
        ("bad host:80", "must be a host name or an IP address"),
    ],
)
def test_bad_listen_addresses(text: str, message: str) -> None:
    assert problems({"ldap": {"listen": text}}) == [f"ldap.listen: {message}"]


def test_listen_addresses_must_not_collide() -> None:
    assert problems({"http": {"listen": "127.0.0.1:3389"}}) == [
        "ldap.listen: must differ from http.listen"
    ]
    # Port 0 picks a free port each time: never a collision.
    parse_config({"http": {"listen": "127.0.0.1:0"}, "ldap": {"listen": "127.0.0.1:0"}})


def test_public_base_url() -> None:
    assert keys({"http": {"public_base_url": "ftp://idgate.example.org"}}) == [
        "http.public_base_url"
    ]
    assert keys({"http": {"public_base_url": "https://idgate.example.org/?x=1"}}) == [
        "http.public_base_url"
    ]


# --- the LDAP front -------------------------------------------------------------------------


@pytest.fixture
def tls_files(tmp_path: Path) -> Path:
    for name in ("cert.pem", "key.pem", "ca.pem"):
        (tmp_path / name).write_text("x")
    return tmp_path


def test_tls_cert_and_key_go_together(tls_files: Path) -> None:
    base = {"base_dir": tls_files}
    assert problems({"ldap": {"tls_cert": "cert.pem"}}, **base) == [
        "ldap.tls_key: required when tls_cert is set"
    ]
    assert problems({"ldap": {"tls_key": "key.pem"}}, **base) == [
        "ldap.tls_cert: required when tls_key is set"
    ]
    config = parse_config({"ldap": {"tls_cert": "cert.pem", "tls_key": "key.pem"}}, **base)
    assert config.ldap.tls_cert == tls_files / "cert.pem"


def test_tls_files_must_exist(tls_files: Path) -> None:
    assert problems(
        {"ldap": {"tls_cert": "missing.pem", "tls_key": "key.pem"}}, base_dir=tls_files
    ) == [f"ldap.tls_cert: no such file: {tls_files / 'missing.pem'}"]
    assert keys(
        {"ldap": {"tls_cert": str(tls_files), "tls_key": "key.pem"}}, base_dir=tls_files
    ) == ["ldap.tls_cert"]


def test_ldaps_listen_requires_a_certificate(tls_files: Path) -> None:
    assert problems({"ldap": {"ldaps_listen": "127.0.0.1:3636"}}) == [
        "ldap.ldaps_listen: requires tls_cert and tls_key"
    ]
    tls = {"tls_cert": "cert.pem", "tls_key": "key.pem"}
    assert problems({"ldap": {**tls, "ldaps_listen": "127.0.0.1:3389"}}, base_dir=tls_files) == [
        "ldap.ldaps_listen: must differ from listen"
    ]


def test_service_account_password_must_be_a_hash(token_hash: str) -> None:
    data = {"ldap": {"service_accounts": [{"dn": "cn=radius,dc=idgate", "password_hash": "pw"}]}}
    [problem] = problems(data)
    assert problem.startswith("ldap.service_accounts[0].password_hash: must be an argon2 hash")
    assert "run `idgate hash-secret`" in problem
    data["ldap"]["service_accounts"][0]["password_hash"] = token_hash
    assert parse_config(data).ldap.service_accounts[0].password_hash == token_hash


@pytest.mark.parametrize("dn", ["radius", "cn=radius,,dc=idgate", "cn=radius,dc=", ""])
def test_service_account_dn_is_checked(dn: str, token_hash: str) -> None:
    data = {"ldap": {"service_accounts": [{"dn": dn, "password_hash": token_hash}]}}
    assert keys(data) == ["ldap.service_accounts[0].dn"]


def test_default_sources_must_exist_and_accept_binds(token_hash: str) -> None:
    data = {
        "ldap": {"default_sources": ["corp", "nowhere", "entra", "corp"]},
        "sources": [ldap_source(), {"id": "entra", "kind": "entra", "token_hash": token_hash}],
    }
    assert problems(data) == [
        "ldap.default_sources[1]: no source has id 'nowhere'",
        "ldap.default_sources[2]: source 'entra' is an entra source: Entra ID sends no"
        " passwords, so nobody can bind there",
        "ldap.default_sources[3]: source 'corp' is listed twice",
    ]


def test_a_malformed_default_source_is_one_issue() -> None:
    assert keys({"ldap": {"default_sources": ["Corp"]}}) == ["ldap.default_sources[0]"]


def test_admin_token_must_be_a_hash(token_hash: str) -> None:
    [problem] = problems({"admins": [{"name": "ops", "role": "super_admin", "token_hash": "t0k"}]})
    assert problem.startswith("admins.ops.token_hash: must be an argon2 hash, not a cleartext")
    assert "idgate hash-secret" in problem


# --- directory sources ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://ldap.example.org",
        "ldap://",
        "ldap://cn=admin:pw@ldap.example.org",
        "ldap://ldap.example.org/dc=example,dc=org",
        "ldap://ldap.example.org:99999",
        "ldap://[::1",
    ],
)
def test_bad_ldap_urls(url: str) -> None:
    assert keys({"sources": [ldap_source(urls=[url])]}) == ["sources.corp.urls[0]"]


def test_ldap_urls_accept_ports_and_ipv6() -> None:
    urls = ["ldaps://[2001:db8::1]:636", "LDAPS://dc.example.org:3269/"]
    assert parse_config({"sources": [ldap_source(urls=urls)]}).source("corp").urls == tuple(urls)  # type: ignore[union-attr]


def test_urls_must_not_be_empty_nor_mix_schemes() -> None:
    assert problems({"sources": [ldap_source(urls=[])]}) == ["sources.corp.urls: must not be empty"]
    mixed = ["ldaps://a.example.org", "ldap://b.example.org"]
    [problem] = problems({"sources": [ldap_source(urls=mixed)]})
    assert problem.startswith("sources.corp.urls: mixes ldap:// and ldaps://")


def test_start_tls_with_ldaps_is_refused() -> None:
    assert problems({"sources": [ldap_source(urls=["ldaps://a.example.org"], start_tls=True)]}) == [
        "sources.corp.start_tls: cannot be used with ldaps:// urls, which are TLS already"
    ]


def test_password_change_only_over_tls(tls_files: Path) -> None:
    front = {"tls_cert": "cert.pem", "tls_key": "key.pem"}
    plain = ldap_source(allow_password_change=True)
    assert problems({"ldap": front, "sources": [plain]}, base_dir=tls_files) == [
        "sources.corp.allow_password_change: requires TLS to the directory (SPEC §2): use"
        " ldaps:// urls or start_tls = true"
    ]
    # TLS to the directory, but none on the front: still refused (TLS on both sides).
    starttls = ldap_source(allow_password_change=True, start_tls=True)
    assert keys({"sources": [starttls]}) == ["sources.corp.allow_password_change"]
    for source in (starttls, ldap_source(allow_password_change=True, urls=["ldaps://a.b"])):
        config = parse_config({"ldap": front, "sources": [source]}, base_dir=tls_files)
        assert config.source("corp").allow_password_change is True  # type: ignore[union-attr]


def test_ca_file_must_exist_and_needs_tls(tls_files: Path) -> None:
    assert problems(
        {"sources": [ldap_source(start_tls=True, ca_file="nope.pem")]}, base_dir=tls_files
    ) == [f"sources.corp.ca_file: no such file: {tls_files / 'nope.pem'}"]
    assert keys({"sources": [ldap_source(ca_file="ca.pem")]}, base_dir=tls_files) == [
        "sources.corp.ca_file"
    ]
    assert keys({"sources": [ldap_source(tls_server_names=["ldap.example.org"])]}) == [
        "sources.corp.tls_server_names"
    ]


def test_bind_password_is_required_and_not_empty() -> None:
    source = ldap_source()
    del source["bind_password"]
    assert problems({"sources": [source]}) == ["sources.corp.bind_password: is required"]
    [problem] = problems({"sources": [ldap_source(bind_password="")]})
    assert problem.startswith("sources.corp.bind_password: must not be empty")


def test_ad_bind_name_may_be_a_upn_or_down_level_name() -> None:
    for name in ("svc@ad.example.org", "EXAMPLE\\svc-idgate", "CN=svc,DC=ad,DC=example,DC=org"):
        parse_config({"sources": [ad_source(bind_dn=name)]})
    assert keys({"sources": [ldap_source(bind_dn="svc@example.org")]}) == ["sources.corp.bind_dn"]


@pytest.mark.parametrize("root", ["people", "ou=people,,dc=example", "ou=people\\"])
def test_roots_must_be_dns(root: str) -> None:
    assert keys({"sources": [ldap_source(roots=["dc=ok", root])]}) == ["sources.corp.roots[1]"]


@pytest.mark.parametrize(
    "good",
    [
        "(objectClass=person)",
        "(!(ou=contractors))",
        "(&(objectCategory=person)(|(mail=*)(uid=a\\2ab)))",
        "(cn=a\\28b\\29)",
    ],
)
def test_good_user_filters(good: str) -> None:
    parse_config({"sources": [ldap_source(user_filter=good)]})


@pytest.mark.parametrize(
    "bad",
    [
        "objectClass=person",
        "(objectClass=person",
        "(&(a=b)(c=d)))",
        "(a=b)(c=d)",
        "(objectClass)",
        "(cn=a\\zz)",
        "()",
    ],
)
def test_bad_user_filters(bad: str) -> None:
    assert keys({"sources": [ldap_source(user_filter=bad)]}) == ["sources.corp.user_filter"]


@pytest.mark.parametrize("name", ["given name", "1mail", "", "mail;"])
def test_attribute_names_are_checked(name: str) -> None:
    data = {"sources": [ldap_source(attributes={"email": name})]}
    assert keys(data) == ["sources.corp.attributes.email"]


def test_status_mapping_consistency() -> None:
    def status(**table: Any) -> list[str]:
        return problems({"sources": [ldap_source(status=table)]})

    assert status(expiration_attribute="shadowExpire") == [
        "sources.corp.status.expiration_format: required when expiration_attribute is set:"
        " generalized_time, filetime or days"
    ]
    assert status(expiration_format="days") == [
        "sources.corp.status.expiration_attribute: required when expiration_format is set"
    ]
    assert status(disabled_values=["TRUE"]) == [
        "sources.corp.status.disabled_attribute: required when disabled_values is set"
    ]
    assert status(disabled_attribute="flags", disabled_values=["1"], disabled_bitmask=2) == [
        "sources.corp.status.disabled_bitmask: set disabled_values or disabled_bitmask, not both"
    ]
    assert status(expiration_attribute="x", expiration_format="unix") == [
        "sources.corp.status.expiration_format: must be 'generalized_time', 'filetime' or 'days'"
    ]
    # Presence alone means disabled when no values are listed.
    config = parse_config(
        {"sources": [ldap_source(status={"disabled_attribute": "pwdAccountLockedTime"})]}
    )
    mapping = config.source("corp").status_mapping()  # type: ignore[union-attr]
    assert mapping == StatusMapping(disabled_attribute="pwdAccountLockedTime")


def test_upn_suffixes_and_netbios_domains_name_one_source() -> None:
    data = {
        "sources": [
            ad_source(id="ad1", upn_suffixes=["example.org"], netbios_domain="EXAMPLE"),
            ad_source(
                id="ad2", upn_suffixes=["Example.ORG", "other.org"], netbios_domain="example"
            ),
        ]
    }
    assert problems(data) == [
        "sources.ad2.upn_suffixes[0]: already claimed by sources.ad1: bind names would be"
        " ambiguous",
        "sources.ad2.netbios_domain: already claimed by sources.ad1: bind names would be ambiguous",
    ]
    assert keys({"sources": [ad_source(netbios_domain="TOO-LONG-FOR-NETBIOS")]}) == [
        "sources.ad.netbios_domain"
    ]


# --- notifications --------------------------------------------------------------------------


def test_notification_settings_go_together() -> None:
    assert problems({"notifications": {"webhook_secret": "s"}}) == [
        "notifications.webhook_url: required when webhook_secret is set"
    ]
    assert problems({"notifications": {"smtp_host": "smtp.example.org"}}) == [
        "notifications.smtp_from: required when smtp_host is set",
        "notifications.smtp_to: required when smtp_host is set",
    ]
    assert problems({"notifications": {"smtp_to": ["a@example.org"]}}) == [
        "notifications.smtp_host: required when smtp_from or smtp_to is set"
    ]
    mail = {"smtp_host": "smtp.example.org", "smtp_from": "a@example.org", "smtp_to": ["b@x.org"]}
    assert problems({"notifications": {**mail, "smtp_password": "pw"}}) == [
        "notifications.smtp_username: required when smtp_password is set"
    ]
    assert problems({"notifications": {**mail, "smtp_username": "u"}}) == [
        "notifications.smtp_password: required when smtp_username is set"
    ]
    assert keys({"notifications": {**mail, "smtp_to": ["not an address"]}}) == [
        "notifications.smtp_to[0]"
    ]
    assert keys({"notifications": {"webhook_url": "ftp://hooks.example.org"}}) == [
        "notifications.webhook_url"
    ]


# --- ${NAME} substitution -------------------------------------------------------------------


def test_variables_are_substituted_in_every_string() -> None:
    data = {
        "store": {"url": "postgresql://idgate@${DB_HOST}/idgate"},
        "sync": {"refresh_batch": "${BATCH}"},
        "sources": [ldap_source(bind_password="${PW}", roots=["ou=${OU},dc=example,dc=org"])],
    }
    env = {"DB_HOST": "db.internal", "BATCH": "250", "PW": "p@ss", "OU": "people"}
    config = parse_config(data, env)
    assert config.store.url == "postgresql+psycopg://idgate@db.internal/idgate"
    assert config.sync.refresh_batch == 250
    corp = config.source("corp")
    assert isinstance(corp, LdapSource)
    assert corp.bind_password.get_secret_value() == "p@ss"
    assert corp.roots == ("ou=people,dc=example,dc=org",)
    assert data["sync"]["refresh_batch"] == "${BATCH}", "the input must not be modified"


def test_a_missing_variable_is_one_issue_naming_key_and_variable() -> None:
    data = {"sources": [ldap_source(bind_password="${CORP_PW}")]}
    assert problems(data, {}) == [
        "sources.corp.bind_password: environment variable CORP_PW is not set"
    ]
    # No environment given is an empty environment, not os.environ.
    assert keys(data) == ["sources.corp.bind_password"]


def test_dollar_dollar_brace_is_a_literal() -> None:
    source = ldap_source(bind_password="$${NOT_A_VAR}and$$more")
    corp = parse_config({"sources": [source]}, {"NOT_A_VAR": "x"}).source("corp")
    assert corp.bind_password.get_secret_value() == "${NOT_A_VAR}and$$more"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${UNTERMINATED", "unterminated ${ (write $${ for a literal ${)"),
        ("${not a name}", "invalid ${...}: a variable name is letters, digits and _"),
        ("${}", "invalid ${...}: a variable name is letters, digits and _"),
    ],
)
def test_malformed_references(text: str, message: str) -> None:
    assert problems({"ldap": {"suffix": text}}) == [f"ldap.suffix: {message}"]


# --- IDGATE_<SECTION>__<KEY> overrides ------------------------------------------------------


def test_overrides_are_parsed_by_the_key_type() -> None:
    env = {
        "IDGATE_STORE__URL": "postgresql://u@db/idgate",
        "IDGATE_STORE__ECHO": "true",
        "IDGATE_SYNC__JIT_INTERVAL_SECONDS": "60",
        "IDGATE_SYNC__JIT_DEADLINE_SECONDS": "0.5",
        "IDGATE_LDAP__LISTEN": "0.0.0.0:389",
        "IDGATE_LDAP__DEFAULT_SOURCES": '["corp"]',
        "IDGATE_LDAP__SUFFIX": "dc=example,dc=org",
        "IDGATE_NOTIFICATIONS__WEBHOOK_URL": "https://hooks.example.org/x",
        "IDGATE_NOTIFICATIONS__WEBHOOK_SECRET": "1234",
    }
    config = parse_config({"sync": {"jit_interval_seconds": 900}, "sources": [ldap_source()]}, env)
    assert config.store.url == "postgresql+psycopg://u@db/idgate"
    assert config.store.echo is True
    assert config.sync.jit_interval_seconds == 60
    assert config.sync.jit_deadline_seconds == 0.5
    assert config.ldap.listen == ListenAddress(host="0.0.0.0", port=389)
    assert config.ldap.default_sources == ("corp",)
    assert config.ldap.suffix == "dc=example,dc=org"
    notes = config.notifications
    assert notes is not None and notes.webhook_url == "https://hooks.example.org/x"
    # A string key takes the text literally: a numeric secret stays a string.
    assert notes.webhook_secret == SecretStr("1234")


def test_override_problems_name_the_variable() -> None:
    env = {
        "IDGATE_SOURCES__ID": "x",
        "IDGATE_SYNC__": "1",
        "IDGATE_SYNC__REFRESH_AFTER_DAYS": "3",
        "IDGATE_SYNC__NO_SUCH_KEY": "1",
        "IDGATE_STORE__POOL_SIZE": "lots",
    }
    assert problems({}, env) == [
        "IDGATE_SOURCES__ID: unknown section 'sources': overrides apply to http, ldap,"
        " notifications, store, sync (use ${NAME} in the file for the rest)",
        "IDGATE_SYNC__: overrides are named IDGATE_<SECTION>__<KEY>",
        "store.pool_size: must be an integer (from IDGATE_STORE__POOL_SIZE)",
        "sync.refresh_after_days: must be at least 7 (got 3)"
        " (from IDGATE_SYNC__REFRESH_AFTER_DAYS)",
        "sync.no_such_key: unknown key (from IDGATE_SYNC__NO_SUCH_KEY)",
    ]


def test_other_idgate_variables_are_not_overrides() -> None:
    env = {"IDGATE_REQUIRE_REAL_SERVERS": "1", "IDGATE_CONFIG": "/etc/idgate.toml", "HOME": "/"}
    assert parse_config({}, env).sync == SyncConfig()


def test_overrides_do_not_expand_variables() -> None:
    env = {"IDGATE_NOTIFICATIONS__SMTP_USERNAME": "${X}", "X": "expanded"}
    data = {"notifications": {"smtp_password": "pw"}}
    assert parse_config(data, env).notifications.smtp_username == "${X}"  # type: ignore[union-attr]


# --- secrets never show ---------------------------------------------------------------------


def test_secrets_are_redacted_in_repr_and_str(full_config_path: Path, token_hash: str) -> None:
    full = full_config_path.read_text()
    full = full.replace(
        "postgresql://idgate@db.example.org/idgate", f"postgresql://idgate:db-{LEAK}@db/idgate"
    ).replace("hooks.example.org/idgate/T0KEN", f"hooks.example.org/services/hook-{LEAK}")
    full_config_path.write_text(full)
    config = load_config(full_config_path, FULL_ENV)

    for text in (repr(config), str(config), repr(config.store), str(config.notifications)):
        assert LEAK not in text
        assert token_hash not in text
        assert "$argon2id$" not in text, "hashes stay out of repr too"
    assert "**********" in repr(config)
    assert config.store.redacted_url == "postgresql+psycopg://idgate:***@db/idgate"
    assert LEAK in config.store.url, "the real value is still there for the store to use"


def test_secrets_never_appear_in_error_messages() -> None:
    data = {
        "store": {"url": f"mysql://root:{LEAK}@db/idgate", "pool_size": "${SECRET}"},
        "sync": {"jit_interval_seconds": "${SECRET}"},
        "notifications": {"webhook_url": f"ftp://{LEAK}@x", "smtp_password": LEAK},
        "admins": [{"name": "ops", "role": LEAK, "token_hash": LEAK}],
        "sources": [
            ldap_source(bind_password=LEAK, urls=[f"ldap://cn=x:{LEAK}@h"], bind_dn=LEAK),
            {"id": "hr", "kind": "scim", "token_hash": LEAK},
            {"id": "x", "kind": LEAK},
            {"id": LEAK, "kind": "local"},
        ],
        "ldap": {"service_accounts": [{"dn": LEAK, "password_hash": LEAK}], "suffix": LEAK},
    }
    env = {"SECRET": LEAK, "IDGATE_HTTP__LISTEN": LEAK}
    with pytest.raises(ConfigError) as caught:
        parse_config(data, env)
    error = caught.value
    assert len(error.issues) >= 12
    assert LEAK not in str(error)
    assert LEAK not in repr(error)
    assert all(LEAK not in issue.message for issue in error.issues)


def test_a_malformed_source_id_is_not_used_as_its_name() -> None:
    # A source id is shown in keys; one that fails its pattern is replaced by the index.
    assert keys({"sources": [{"id": LEAK, "kind": "local"}]}) == ["sources[0].id"]


# --- files ----------------------------------------------------------------------------------


def test_toml_syntax_error_is_one_issue_with_line_and_column() -> None:
    path = SAMPLES / "syntax-error.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.issues == [
        ConfigIssue(str(path), "invalid TOML at line 5, column 8: Invalid value")
    ]


def test_toml_error_at_end_of_file_names_the_last_line(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text('[store]\nurl = "sqlite:///x.db')
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "c.toml")
    [issue] = caught.value.issues
    assert issue.message == "invalid TOML at the end of the file (line 2): Unterminated string"


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "missing.toml")
    assert (
        str(caught.value) == f"{tmp_path / 'missing.toml'}: cannot read: No such file or directory"
    )
    (tmp_path / "latin1.toml").write_bytes(b"# caf\xe9\n")
    with pytest.raises(ConfigError, match="is not UTF-8"):
        load_config(tmp_path / "latin1.toml")


# --- the models -----------------------------------------------------------------------------


def test_config_is_frozen() -> None:
    config = parse_config({"sources": [ldap_source()]})
    with pytest.raises(ValidationError):
        config.sync.refresh_batch = 5  # type: ignore[misc]
    assert isinstance(config.sources, tuple)
    assert isinstance(config.source("corp").roots, tuple)  # type: ignore[union-attr]


def test_source_lookup_and_directory_sources(token_hash: str) -> None:
    config = parse_config(
        {
            "sources": [
                ldap_source(),
                {"id": "hr", "kind": "scim", "token_hash": token_hash},
                ad_source(enabled=False),
                {"id": "entra", "kind": "entra", "token_hash": token_hash},
                {"id": "staff", "kind": "local"},
            ]
        }
    )
    assert config.source("hr").kind == "scim"
    with pytest.raises(
        KeyError, match=r"no source with id 'nope' \(configured: corp, hr, ad, entra"
    ):
        config.source("nope")
    assert [s.id for s in config.directory_sources()] == ["corp"]
    assert [s.id for s in config.directory_sources(include_disabled=True)] == ["corp", "ad"]
    # No default_sources: every enabled source users can bind to, in file order.
    assert [s.id for s in config.bare_login_sources()] == ["corp", "hr", "staff"]


def test_bare_login_sources_follow_default_sources() -> None:
    data = {
        "ldap": {"default_sources": ["staff", "corp"]},
        "sources": [ldap_source(), {"id": "staff", "kind": "local"}],
    }
    assert [s.id for s in parse_config(data).bare_login_sources()] == ["staff", "corp"]


def test_a_config_built_in_python_is_checked_too() -> None:
    with pytest.raises(ValidationError, match="duplicate source id 'a'"):
        Config(sources=(LocalSource(id="a"), LocalSource(id="a")))


def test_docs_describe_every_key() -> None:
    """docs/configuration.md names every key of every table, as `key`."""
    docs = DOCS.read_text()
    models: list[type[BaseModel]] = [
        StoreConfig,
        HttpConfig,
        LdapConfig,
        ServiceAccount,
        SyncConfig,
        NotificationsConfig,
        AdminConfig,
        LdapSource,
        AdSource,
        ScimSource,
        EntraSource,
        LocalSource,
        AttributeMap,
        StatusConfig,
    ]
    missing = [
        f"{model.__name__}.{name}"
        for model in models
        for name in model.model_fields
        if not re.search(rf"`{name}`", docs)
    ]
    assert missing == []
    for section in ("[store]", "[http]", "[ldap]", "[[ldap.service_accounts]]", "[sync]"):
        assert section in docs
    for section in ("[notifications]", "[[admins]]", "[[sources]]", "[sources.attributes]"):
        assert section in docs
    assert "[sources.status]" in docs and "IDGATE_" in docs and "$${" in docs
