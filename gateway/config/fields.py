"""What the configuration models are built from: their base class and checked field types."""

import types
from collections.abc import Mapping
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, PlainValidator

from gateway.config import checks


class Model(BaseModel):
    """Every table of the file: frozen, and unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")


Integer = Annotated[int, BeforeValidator(checks.integer)]
Number = Annotated[float, BeforeValidator(checks.number)]
SourceId = Annotated[str, AfterValidator(checks.source_id)]
AttributeName = Annotated[str, AfterValidator(checks.attribute_name)]
DistinguishedName = Annotated[str, AfterValidator(checks.distinguished_name)]
HostName = Annotated[str, AfterValidator(checks.hostname)]
Argon2Hash = Annotated[str, AfterValidator(checks.argon2_hash)]
ExistingFile = Annotated[Path, AfterValidator(checks.existing_file)]
EmailAddress = Annotated[str, AfterValidator(checks.email_address)]
NonBlank = Annotated[str, AfterValidator(checks.not_blank)]
Network = Annotated[IPv4Network | IPv6Network, PlainValidator(checks.network)]
#: The mass-disable guard's thresholds (SPEC §5.3): false switches one off.
DisableCount = Annotated[int | Literal[False], PlainValidator(checks.disable_count)]
DisablePercent = Annotated[float | Literal[False], PlainValidator(checks.disable_percent)]


def unwrap(annotation: Any, node: Any) -> Any:
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
