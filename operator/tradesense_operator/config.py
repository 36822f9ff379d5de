"""Operator-wide settings from environment variables (prefix TSO_), validated once at start-up.

Per-resource choices live in the CRDs; only what is a property of the installation is here. The model reads
the variables itself (names case-insensitive, values parsed and validated by the fields), so parsing and
validation are the model's own; this module adds only an error message that names the variable, because that is
what an operator's user edits. Not pydantic-settings: its import (dotenv, every cloud source) cost each
operator process ~5 MB of RSS for the dozen variables read here.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ENV_PREFIX = "TSO_"


class Settings(BaseModel):
    """Installation-level configuration; keyword arguments win over TSO_* variables."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    log_format: Literal["json", "text"] = Field(default="text", description="json in the Deployment.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Root log level.")
    http_port: int = Field(default=8081, ge=0, le=65535,
                           description="Port of /metrics, /healthz, /readyz and the alert bridge (0 = disabled).")
    prometheus_url: str = Field(default="http://prometheus-operated.monitoring.svc:9090",
                                description="Default Prometheus for ScalingPolicies that name none.")
    operator_namespace: str = Field(default="tradesense-system", description="Where the operator runs.")
    restart_limit_per_hour: int = Field(default=3, ge=1, le=100,
                                        description="Restart-storm guard default per Deployment.")
    lock_lease_seconds: int = Field(default=60, ge=5, le=3600,
                                    description="Duration of the per-namespace remediation Lease; renewed while running.")
    step_poll_seconds: float = Field(default=2.0, gt=0, le=60,
                                     description="How often a waiting step (rollout status, pods ready) re-checks.")

    bridge_default_namespace: str = Field(default="tradesense",
                                          description="Namespace for incidents from alerts without a namespace label.")
    bridge_token_secret: str = Field(default="tradesense-operator-bridge",
                                     description="Secret (operator namespace) whose key `token` authenticates Alertmanager.")
    bridge_routes_configmap: str = Field(default="tradesense-alert-routes",
                                         description="ConfigMap (operator namespace) mapping alert names to runbooks.")
    bridge_max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576,
                                       description="Largest webhook body accepted.")
    bridge_rate_per_second: float = Field(default=5.0, gt=0, description="Sustained webhook requests per source.")
    bridge_burst: int = Field(default=20, ge=1, description="Webhook request burst per source.")

    @model_validator(mode="before")
    @classmethod
    def _from_environment(cls, data: Any) -> Any:
        """Fill the fields the caller left out from TSO_<FIELD> (any case); other TSO_* variables are not ours."""
        if not isinstance(data, dict):
            return data
        environment = {name[len(ENV_PREFIX):].lower(): value for name, value in os.environ.items()
                       if name.upper().startswith(ENV_PREFIX)}
        return {**{k: v for k, v in environment.items() if k in cls.model_fields}, **data}

    @classmethod
    def from_env(cls) -> Settings:
        """Read TSO_* variables; a bad value raises ValueError naming the variable."""
        try:
            return cls()
        except ValidationError as exc:
            problems = "; ".join(
                f"{ENV_PREFIX}{str(err['loc'][0]).upper()}: {err['msg']}" for err in exc.errors()
            )
            raise ValueError(f"invalid operator settings: {problems}") from exc
