"""Sources and connectors for the directory tests.

`ldap_source(...)` builds the `corp` source of SPEC §9 against given URLs (the seed's service
account, ou=people as the root, the seed's status attributes); keyword arguments override
any key. `connect(source)` makes a `Directory` that is closed when the test ends, its bind
connections on the reactor included (`tests.reactor`).
"""

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from gateway.config import AdSource, LdapSource
from gateway.directory import Directory
from tests.reactor import blocking
from tests.servers.slapd import Slapd

SERVICE_DN = "cn=idgate,ou=services,dc=example,dc=org"
SERVICE_PASSWORD = "idgate-secret"
PEOPLE = "ou=people,dc=example,dc=org"


def ldap_source(urls: Sequence[str], **overrides: Any) -> LdapSource:
    data: dict[str, Any] = {
        "id": "corp",
        "kind": "ldap",
        "urls": list(urls),
        "bind_dn": SERVICE_DN,
        "bind_password": SERVICE_PASSWORD,
        "roots": [PEOPLE],
        "connect_timeout_seconds": 2,
        "operation_timeout_seconds": 5,
        "attributes": {
            "sms_phone": "mobile",
            "voice_phone": "telephoneNumber",
            "groups": "memberOf",
            "policy": ["title", "departmentNumber"],
        },
        "status": {
            "disabled_attribute": "pwdAccountLockedTime",
            "expiration_attribute": "shadowExpire",
            "expiration_format": "days",
        },
    }
    data.update(overrides)
    return LdapSource.model_validate(data)


def ad_source(**overrides: Any) -> AdSource:
    data: dict[str, Any] = {
        "id": "ad",
        "kind": "ad",
        "urls": ["ldap://dc1.corp.example"],
        "bind_dn": "svc-idgate@corp.example",
        "bind_password": "x",
        "roots": ["OU=Staff,DC=corp,DC=example"],
        "netbios_domain": "CORP",
        "upn_suffixes": ["corp.example"],
        "attributes": {"email": "mail", "sms_phone": "mobile"},
    }
    data.update(overrides)
    return AdSource.model_validate(data)


@pytest.fixture
def connect() -> Iterator[Callable[..., Directory]]:
    made: list[Directory] = []

    def make(source: LdapSource | AdSource, **options: Any) -> Directory:
        directory = Directory(source, **options)
        made.append(directory)
        return directory

    yield make
    for directory in made:
        # On the reactor's thread, so the close of the bind connections is waited for.
        blocking(directory.close)


@pytest.fixture
def corp(slapd: Slapd, connect: Callable[..., Directory]) -> Directory:
    """The shared seeded slapd as the `corp` source."""
    return connect(ldap_source([slapd.url]))
