"""Types shared by the three kinds: base model config, conditions, references.

Fields are snake_case in Python and camelCase on the wire (Kubernetes convention); every field has a
description because it becomes `kubectl explain` text in the generated CRD.

No I/O; must not import from outside `api`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator
from pydantic.alias_generators import to_camel

GROUP = "ops.tradesense.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "tradesense"

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"

Name = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)]


def list_map(*keys: str) -> dict[str, JsonValue]:
    """Schema markers for a list keyed by `keys`: the apiserver enforces unique keys and server-side
    apply merges items by key instead of replacing the whole list."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


LabelValue = Annotated[str, Field(max_length=63, pattern=r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")]


class ApiModel(BaseModel):
    """Base for every API type: camelCase aliases, unknown fields rejected, name-or-alias input."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=False,
        validate_default=True,
    )

    def to_api(self) -> dict[str, object]:
        """Serialise for the Kubernetes API: aliases, no nulls, JSON-compatible values."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ConditionStatus(StrEnum):
    """Kubernetes condition status."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """A Kubernetes-convention condition (metav1.Condition)."""

    type: str = Field(description="Type of condition in CamelCase, e.g. Ready, Progressing, Escalated.",
                      pattern=r"^[A-Z][A-Za-z0-9]*$", max_length=316)
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(description="One-word CamelCase reason for the last transition.",
                        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", max_length=1024)
    message: str = Field(default="", description="Human-readable details of the last transition.",
                         max_length=32768)
    last_transition_time: datetime = Field(description="When the status last changed.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation this condition was computed from."
    )


class SecretKeyRef(ApiModel):
    """A key in a Secret in the resource's namespace. Values are read only where used, never logged."""

    name: Name = Field(description="Name of the Secret.")
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$",
                     description="Key within the Secret's data.")


HOST_XOR_SERVICE = "host and serviceName are mutually exclusive: set at most one"


class DatabaseConnection(ApiModel):
    """How the operator reaches PostgreSQL; the password comes from a Secret, never from the spec."""

    # The same rule in-cluster (CEL in the CRD) and in the CLI/handlers (the validator below).
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "!(has(self.host) && has(self.serviceName))", "message": HOST_XOR_SERVICE},
    ]})

    host: str | None = Field(default=None, max_length=253,
                             description="Host name or IP. Mutually exclusive with serviceName.")
    service_name: Name | None = Field(
        default=None, description="A Service in the resource's namespace; resolved to <name>.<namespace>.svc."
    )
    port: int = Field(default=5432, ge=1, le=65535, description="TCP port.")
    database: str = Field(default="tradesense", min_length=1, max_length=63, description="Database name.")
    user: str = Field(default="tradesense", min_length=1, max_length=63, description="Role to connect as.")
    password_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding the password; omit for trust/peer authentication."
    )
    sslmode: str = Field(default="prefer", max_length=11, pattern=r"^(disable|allow|prefer|require|verify-ca|verify-full)$",
                         description="libpq sslmode.")

    @model_validator(mode="after")
    def _at_most_one_address(self) -> Self:
        if self.host is not None and self.service_name is not None:
            raise ValueError(HOST_XOR_SERVICE)
        return self


class RedisConnection(ApiModel):
    """How the operator reaches Redis; the password comes from a Secret."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "!(has(self.host) && has(self.serviceName))", "message": HOST_XOR_SERVICE},
    ]})

    host: str | None = Field(default=None, max_length=253, description="Host name or IP.")
    service_name: Name | None = Field(default=None, description="A Service in the target namespace.")
    port: int = Field(default=6379, ge=1, le=65535, description="TCP port.")
    db: int = Field(default=0, ge=0, le=15, description="Logical database index.")
    password_secret_ref: SecretKeyRef | None = Field(default=None, description="Secret key with the password.")

    @model_validator(mode="after")
    def _at_most_one_address(self) -> Self:
        if self.host is not None and self.service_name is not None:
            raise ValueError(HOST_XOR_SERVICE)
        return self
