"""``[sources.attributes]`` and ``[sources.status]``: what a source's attributes mean.

`AttributeMap` says which upstream attribute feeds which user field (SPEC §2); `StatusConfig`
says which ones say a user is disabled or expired, for the status engine (SPEC §4.3).
"""

from pydantic import Field, ValidationInfo, field_validator

from gateway.config.errors import sibling_error
from gateway.config.fields import AttributeName, Integer, Model, NonBlank
from gateway.engine.statusmap import AD_STATUS_MAPPING, ExpirationFormat, StatusMapping


class AttributeMap(Model):
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


class StatusConfig(Model):
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
            raise sibling_error("disabled_attribute", "required when disabled_values is set")
        return value

    @field_validator("disabled_bitmask")
    @classmethod
    def _bitmask_alone(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is None:
            return value
        if info.data.get("disabled_attribute", "") is None:
            raise sibling_error("disabled_attribute", "required when disabled_bitmask is set")
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
            raise sibling_error("expiration_attribute", "required when expiration_format is set")
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
