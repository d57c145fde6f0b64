"""What each SCIM endpoint serves: its models, resource types and capabilities (RFC 7643 §5-§7).

Three services, built once per process:
- a generic `scim` source: User (with the enterprise extension) and Group, strict RFC 7644;
- an `entra` source: the same resources, read with the tolerances Microsoft Entra ID needs
  (scim2-models' `ScimPolicy`: unknown attributes dropped, a `remove` value read as a filter, a
  `replace` on an unmatched value filter creating the entry);
- the admin view: User with the enterprise extension and idgate's gateway extension, which
  carries what the gateway knows of a user and no client may write (every attribute readOnly).
"""

from datetime import datetime
from typing import Annotated, Any, Generic, Union

from pydantic import Field
from scim2_models import (
    URN,
    AuthenticationScheme,
    Bulk,
    CaseExact,
    ChangePassword,
    ComplexAttribute,
    Email,
    ETag,
    Extension,
    Filter,
    Group,
    Mutability,
    Pagination,
    Patch,
    Reference,
    ResourceType,
    ScimPolicy,
    ScimProvider,
    ServiceProviderConfig,
    Sort,
    User,
)
from scim2_models import External as ExternalReference
from scim2_models.resources.resource import AnyExtension

GATEWAY_SCHEMA = "urn:idgate:params:scim:schemas:extension:gateway:2.0:User"
#: RFC 7643 §5 maxResults: the most resources one search answers (Entra pages by 100).
MAX_RESULTS = 1000
#: RFC 7644 §3.4.2.4: the page size when the client names no count.
DEFAULT_PAGE_SIZE = 100
#: The largest request body accepted (RFC 7644 §3.12: 413 beyond it).
MAX_BODY_BYTES = 1024 * 1024


class GatewayPhone(ComplexAttribute):
    """A phone number as the gateway holds it, with its provenance (SPEC §3)."""

    value: Annotated[str | None, Mutability.read_only] = None
    #: "sms" or "voice".
    type: Annotated[str | None, Mutability.read_only, CaseExact.true] = None
    #: The first number of a list is its default.
    primary: Annotated[bool | None, Mutability.read_only] = None
    #: Entered or edited by an administrator: sync never overwrites it.
    manual: Annotated[bool | None, Mutability.read_only] = None


class GatewayUser(Extension):
    """idgate's view of a user: status, provenance and activity (SPEC §4.1, §7 admin view)."""

    __schema__ = URN(GATEWAY_SCHEMA)

    source: Annotated[str | None, Mutability.read_only, CaseExact.true] = None
    #: "active" or "disabled".
    status: Annotated[str | None, Mutability.read_only, CaseExact.true] = None
    #: "source", "admin" or "cleanup"; absent while active.
    disabled_by: Annotated[str | None, Mutability.read_only, CaseExact.true] = None
    #: "source_disabled", "source_expired", "missing", "admin" or "never_used".
    reason: Annotated[str | None, Mutability.read_only, CaseExact.true] = None
    pending_deletion_since: Annotated[datetime | None, Mutability.read_only] = None
    last_sync: Annotated[datetime | None, Mutability.read_only] = None
    last_authentication: Annotated[datetime | None, Mutability.read_only] = None
    phones: Annotated[list[GatewayPhone] | None, Mutability.read_only] = None


class Manager(ComplexAttribute):
    """RFC 7643 §4.3: `value` and `$ref` are RECOMMENDED, not required (scim2-models requires
    both; Entra ID sends only `value`)."""

    value: Annotated[str | None, CaseExact.true] = None
    ref: Annotated[Reference["User"] | None, Mutability.read_write] = Field(  # type: ignore[type-arg]
        None, serialization_alias="$ref", validation_alias="$ref"
    )
    display_name: Annotated[str | None, Mutability.read_only] = None


class EnterpriseUser(Extension):
    """RFC 7643 §4.3, with the manager of RFC 7643 rather than scim2-models' stricter one."""

    __schema__ = URN("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")

    employee_number: str | None = None
    cost_center: str | None = None
    organization: str | None = None
    division: str | None = None
    department: str | None = None
    manager: Manager | None = None


class KeptEmail(Email):
    """RFC 7643 §4.1.2: an email value SHOULD follow RFC 5321, and is kept as the client sent
    it (Microsoft: "values sent should be stored in the same format"); scim2-models' EmailStr
    would refuse some and lower-case the domain of the others."""

    value: str | None = None


class ProvisionedUser(User[AnyExtension], Generic[AnyExtension]):
    """The User of a generic SCIM source."""

    emails: list[KeptEmail] | None = None  # type: ignore[assignment]


class EntraUser(ProvisionedUser[AnyExtension], Generic[AnyExtension]):
    """The User of an Entra ID source: `profileUrl` is whatever the attribute mapping feeds it
    (Microsoft's SCIM validator sends a bare word), so it is a string, not a reference."""

    profile_url: str | None = None  # type: ignore[assignment]


SourceUser = ProvisionedUser[EnterpriseUser]
EntraSourceUser = EntraUser[EnterpriseUser]
#: Shows the documents of both kinds of source.
AdminUser = EntraUser[Union[EnterpriseUser, GatewayUser]]  # noqa: UP007 - scim2-models wants Union

BEARER = AuthenticationScheme(
    type=AuthenticationScheme.Type.oauthbearertoken,
    name="OAuth Bearer Token",
    description="A bearer token per source (RFC 6750); administrators have tokens of their own",
    spec_uri=Reference[ExternalReference]("https://www.rfc-editor.org/rfc/rfc6750"),
    primary=True,
)


def _config(*, writes: bool, change_password: bool) -> ServiceProviderConfig:
    return ServiceProviderConfig(
        patch=Patch(supported=writes),
        # Not offered: Entra ID and the clients idgate serves send one operation a request.
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=change_password),
        sort=Sort(supported=True),
        etag=ETag(supported=True),
        authentication_schemes=[BEARER],
        # RFC 9865 §2: index paging only (no cursors), and a page size when none is asked.
        pagination=Pagination(
            cursor=False,
            index=True,
            default_pagination_method=Pagination.DefaultPaginationMethod.index,
            default_page_size=DEFAULT_PAGE_SIZE,
            max_page_size=MAX_RESULTS,
        ),
    )


def _resource_types(user: Any, *, groups: bool) -> list[ResourceType]:
    types = [ResourceType.from_resource(user)]
    if groups:
        types.append(ResourceType.from_resource(Group))
    return types


#: RFC 7644 §3.5.2 and Microsoft's "Known issues" for SCIM provisioning.
ENTRA_POLICY = ScimPolicy(
    unknown=ScimPolicy.Unknown.ignore,
    remove_value_as_filter=ScimPolicy.RemoveValue.apply,
    unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create,
)


def scim_provider() -> ScimProvider:
    return ScimProvider(
        models=[ProvisionedUser, EnterpriseUser, Group],
        resource_types=_resource_types(SourceUser, groups=True),
        config=_config(writes=True, change_password=True),
    )


def entra_provider() -> ScimProvider:
    return ScimProvider(
        models=[EntraUser, EnterpriseUser, Group],
        resource_types=_resource_types(EntraSourceUser, groups=True),
        # Entra ID never sends a password (SPEC §7).
        config=_config(writes=True, change_password=False),
        policy=ENTRA_POLICY,
    )


def admin_provider() -> ScimProvider:
    return ScimProvider(
        models=[EntraUser, EnterpriseUser, GatewayUser],
        resource_types=_resource_types(AdminUser, groups=False),
        config=_config(writes=False, change_password=False),
    )
