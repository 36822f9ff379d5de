"""Secret actions: presence of the JWT signing key and its rotation; the value never leaves this module.

Presence is decided on the base64 text's length without decoding it, and a rotation's new value goes
from `secrets.token_urlsafe` straight into the PATCH body. Messages and evidence name the Secret and the
key, never a value or its length.
"""

from __future__ import annotations

import base64
import secrets

from tradesense_operator.api.v1alpha1.incident import StepAction
from tradesense_operator.clients.errors import NotFound
from tradesense_operator.clients.kube import SECRETS, JsonDict
from tradesense_operator.clients.secret_values import register_secret
from tradesense_operator.services.step_adapters.base import Outcome, StepContext, StepFailed, StepResult
from tradesense_operator.services.step_adapters.step_inputs import param_int, require_str, target_name

ROTATED_BY = "ops.tradesense.io/rotated-by"
ROTATED_AT = "ops.tradesense.io/rotated-at"
DEFAULT_BYTES = 48
MIN_BYTES = 32  # HS256 wants at least 256 bits of key


async def _secret(ctx: StepContext) -> tuple[str, str, JsonDict]:
    name, key = target_name(ctx.step, "secret"), require_str(ctx.step, "key")
    try:
        return name, key, await ctx.runtime.kube.get(SECRETS, name, ctx.namespace)
    except NotFound as exc:
        raise StepFailed(f"secret/{name} not found in namespace {ctx.namespace}") from exc


def _has_value(secret: JsonDict, key: str) -> bool:
    return bool((secret.get("data") or {}).get(key)) or bool((secret.get("stringData") or {}).get(key))


def _annotations(secret: JsonDict) -> dict[str, str]:
    return dict((secret.get("metadata") or {}).get("annotations") or {})


class SecretPresent:
    """`kubectl get secret tradesense-secrets`: is the signing key there and non-empty (value not read)."""

    name = StepAction.SECRET_PRESENT
    destructive = False

    async def describe(self, ctx: StepContext) -> str:
        name, key, _ = await _secret(ctx)
        return f"check that secret/{name} has a non-empty {key} (value never read out)"

    async def run(self, ctx: StepContext) -> StepResult:
        name, key, secret = await _secret(ctx)
        if not _has_value(secret, key):
            raise StepFailed(f"secret/{name} has no non-empty key {key}: logins cannot be signed")
        evidence = {"secret": name, "key": key, "present": "true"}
        rotated = _annotations(secret).get(ROTATED_AT)
        if rotated:
            evidence["lastRotated"] = rotated
        return StepResult(Outcome.DONE, f"secret/{name} has a non-empty {key}", evidence)


class SecretRotate:
    """`./scripts/rotate-secrets.sh` for the signing key: a new random value, stamped, in one PATCH."""

    name = StepAction.SECRET_ROTATE
    destructive = False

    async def describe(self, ctx: StepContext) -> str:
        name, key, secret = await _secret(ctx)
        last = _annotations(secret).get(ROTATED_AT, "never by the operator")
        return (f"replace {key} in secret/{name} with a new random value (last rotated: {last}); "
                "pods pick it up on their next restart")

    async def run(self, ctx: StepContext) -> StepResult:
        name, key, secret = await _secret(ctx)
        annotations = _annotations(secret)
        if annotations.get(ROTATED_BY) == ctx.stamp:
            return StepResult(Outcome.ALREADY_DONE, f"{key} in secret/{name} already rotated by this step",
                              {"rotatedAt": annotations.get(ROTATED_AT, "")})
        size = max(param_int(ctx.step, "length", DEFAULT_BYTES) or DEFAULT_BYTES, MIN_BYTES)
        new_value = secrets.token_urlsafe(size)
        register_secret(new_value)
        encoded = base64.b64encode(new_value.encode()).decode()
        now = ctx.runtime.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
        patch = {"metadata": {"annotations": {ROTATED_BY: ctx.stamp, ROTATED_AT: now}}, "data": {key: encoded}}
        await ctx.runtime.kube.patch(SECRETS, name, patch, ctx.namespace)
        return StepResult(Outcome.DONE, f"rotated {key} in secret/{name} (new value not shown)", {"rotatedAt": now})
