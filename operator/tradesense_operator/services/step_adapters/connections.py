"""Clients for the data-plane actions, built from the incident's `spec.target` for one invocation.

Defaults follow the runbook's layout: PostgreSQL at the Service named like the postgres workload
(`postgres.<namespace>.svc`, database and role `tradesense`), Redis at `redis.<namespace>.svc` db 0.
Passwords come from the referenced Secret through the Kubernetes API, go straight into the client
constructor and are never stored, logged or put into a message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tradesense_operator.api.v1alpha1.common import SecretKeyRef
from tradesense_operator.clients.errors import Invalid, NotFound
from tradesense_operator.clients.http import HttpClient
from tradesense_operator.clients.postgres import PgConnectionInfo, PostgresClient
from tradesense_operator.clients.redis import RedisClient
from tradesense_operator.clients.secret_values import read_secret_key
from tradesense_operator.services.step_adapters.base import StepContext, StepFailed


async def secret_value(ctx: StepContext, ref: SecretKeyRef, field: str) -> str:
    """Decode one Secret key; StepFailed names the Secret, the key and the spec field, never the value."""
    try:
        return await read_secret_key(ctx.runtime.kube, ctx.namespace, ref.name, ref.key)
    except (NotFound, Invalid) as exc:
        raise StepFailed(f"{field}: {exc}") from None


def _service_host(service: str, namespace: str) -> str:
    return f"{service}.{namespace}.svc"


async def postgres_client(ctx: StepContext) -> PostgresClient:
    """A client for spec.target.database (default: the postgres workload's Service, trust authentication)."""
    target = ctx.spec.target
    conn = target.database
    if conn is None:
        return PostgresClient(PgConnectionInfo(host=_service_host(target.postgres, ctx.namespace)))
    host = conn.host or _service_host(conn.service_name or target.postgres, ctx.namespace)
    password = None
    if conn.password_secret_ref is not None:
        password = await secret_value(ctx, conn.password_secret_ref, "spec.target.database.passwordSecretRef")
    info = PgConnectionInfo(host=host, port=conn.port, dbname=conn.database, user=conn.user, sslmode=conn.sslmode)
    return PostgresClient(info, password)


def database_label(ctx: StepContext) -> str:
    """host:port/database for messages (never credentials)."""
    target = ctx.spec.target
    conn = target.database
    if conn is None:
        return f"{_service_host(target.postgres, ctx.namespace)}:5432/tradesense"
    host = conn.host or _service_host(conn.service_name or target.postgres, ctx.namespace)
    return f"{host}:{conn.port}/{conn.database}"


@asynccontextmanager
async def redis_client(ctx: StepContext) -> AsyncIterator[RedisClient]:
    """A client for spec.target.redisConnection (default: the redis workload's Service, db 0), closed after use."""
    target = ctx.spec.target
    conn = target.redis_connection
    if conn is None:
        client = RedisClient(host=_service_host(target.redis, ctx.namespace))
    else:
        host = conn.host or _service_host(conn.service_name or target.redis, ctx.namespace)
        password = None
        if conn.password_secret_ref is not None:
            password = await secret_value(ctx, conn.password_secret_ref, "spec.target.redisConnection.passwordSecretRef")
        client = RedisClient(host=host, port=conn.port, db=conn.db, password=password)
    try:
        yield client
    finally:
        await client.aclose()


@asynccontextmanager
async def http_client() -> AsyncIterator[HttpClient]:
    """An HTTP client for probes, closed after use."""
    client = HttpClient()
    try:
        yield client
    finally:
        await client.aclose()
