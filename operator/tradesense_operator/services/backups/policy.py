"""Turn a BackupPolicy (spec + its Secrets) into what the engine needs: a PgTarget and a BackupStore.

Secret values are read here, at the last moment, and only placed into objects whose repr hides them;
this module must never log them or put them in status, and must not run a backup.
"""

from __future__ import annotations

from dataclasses import dataclass

from tradesense_operator.api.v1alpha1.backup import BackupPolicySpec
from tradesense_operator.api.v1alpha1.common import DatabaseConnection
from tradesense_operator.clients import secret_values
from tradesense_operator.clients.errors import Invalid, NotFound
from tradesense_operator.clients.kube import BACKUP_POLICIES, KubeClient
from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.clients.storage import BackupStore, FilesystemStore, S3Location, S3Store


class PolicyInvalid(ValueError):
    """The policy cannot be acted on; the message names the field."""


@dataclass(frozen=True)
class PolicyContext:
    """One BackupPolicy, resolved."""

    namespace: str
    name: str
    spec: BackupPolicySpec
    target: PgTarget
    store: BackupStore

    @property
    def label(self) -> str:
        """Backups of this policy are named and listed by the policy's name."""
        return self.name


def database_host(db: DatabaseConnection, namespace: str) -> str:
    """host, or the Service's cluster DNS name."""
    if db.host and db.service_name:
        raise PolicyInvalid("spec.database: host and serviceName are mutually exclusive")
    if db.host:
        return db.host
    if db.service_name:
        return f"{db.service_name}.{namespace}.svc"
    raise PolicyInvalid("spec.database: one of host or serviceName is required")


async def read_secret_key(kube: KubeClient, namespace: str, name: str, key: str, *, field: str) -> str:
    """One decoded Secret value; PolicyInvalid naming `field` when the Secret or key is missing or unreadable."""
    try:
        return await secret_values.read_secret_key(kube, namespace, name, key)
    except (NotFound, Invalid) as exc:
        raise PolicyInvalid(f"{field}: {exc}") from exc


async def resolve(kube: KubeClient, namespace: str, name: str, spec: BackupPolicySpec) -> PolicyContext:
    """Build the engine's inputs for a policy whose spec is already validated."""
    db = spec.database
    password = None
    if db.password_secret_ref is not None:
        ref = db.password_secret_ref
        password = await read_secret_key(kube, namespace, ref.name, ref.key, field="spec.database.passwordSecretRef")
    target = PgTarget(host=database_host(db, namespace), port=db.port, dbname=db.database, user=db.user,
                      password=password, sslmode=db.sslmode)
    storage = spec.storage
    if (storage.filesystem is None) == (storage.s3 is None):
        raise PolicyInvalid("spec.storage: exactly one of filesystem or s3 is required")
    store: BackupStore
    if storage.filesystem is not None:
        store = FilesystemStore(storage.filesystem.path)
    else:
        s3 = storage.s3
        assert s3 is not None
        secret = s3.credentials_secret_ref
        field = "spec.storage.s3.credentialsSecretRef"
        store = S3Store(S3Location(
            bucket=s3.bucket, prefix=s3.prefix, endpoint=s3.endpoint, region=s3.region,
            access_key_id=await read_secret_key(kube, namespace, secret, "AWS_ACCESS_KEY_ID", field=field),
            secret_access_key=await read_secret_key(kube, namespace, secret, "AWS_SECRET_ACCESS_KEY", field=field),
        ))
    return PolicyContext(namespace=namespace, name=name, spec=spec, target=target, store=store)


async def load_policy(kube: KubeClient, namespace: str, name: str) -> PolicyContext:
    """Read a BackupPolicy from the API and resolve it (for the restore runbooks)."""
    body = await kube.get(BACKUP_POLICIES, name, namespace)
    try:
        spec = BackupPolicySpec.model_validate(body.get("spec") or {})
    except ValueError as exc:
        raise PolicyInvalid(f"BackupPolicy {namespace}/{name}: invalid spec: {exc}") from exc
    return await resolve(kube, namespace, name, spec)
