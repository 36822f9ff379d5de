"""Per-kind CRD metadata that is not a property of the spec/status models themselves.

The models say what a valid object is; this table says how Kubernetes presents the kind: names,
short names, the `tradesense` category, printer columns and which spec fields stay mutable. The CRD
generator reads only this table and the models, so adding a kind means adding one entry here.

None of the kinds gets a scale subresource: it exposes an object's OWN desired replica count
(`spec.replicas`). ScalingPolicy is an autoscaler like the HPA (which has none either); exposing its
target's replicas through it would let `kubectl scale sp` fight the policy it configures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel

from tradesense_operator.api.v1alpha1 import backup, incident, scaling
from tradesense_operator.api.v1alpha1.common import CATEGORY, GROUP, VERSION


@dataclass(frozen=True)
class PrinterColumn:
    """One `additionalPrinterColumns` entry (what `kubectl get` shows)."""

    name: str
    type: str  # integer, number, string, boolean or date
    json_path: str
    description: str
    priority: int = 0  # 0: shown by `kubectl get`; 1: only with `-o wide`

    def to_crd(self) -> dict[str, object]:
        """The column as it appears in the CRD version."""
        column: dict[str, object] = {
            "name": self.name,
            "type": self.type,
            "jsonPath": self.json_path,
            "description": self.description,
        }
        if self.priority:
            column["priority"] = self.priority
        return column


AGE = PrinterColumn("Age", "date", ".metadata.creationTimestamp", "Time since the object was created.")


@dataclass(frozen=True)
class CrdKind:
    """Everything the CRD generator needs for one kind besides its models."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    model: type[BaseModel]  # the top-level object model (apiVersion, kind, metadata, spec, status)
    description: str
    printer_columns: tuple[PrinterColumn, ...]
    # None: the whole spec is mutable. Otherwise the spec fields (wire names) that may change after
    # creation; every other spec field gets a CEL transition rule that rejects changes.
    mutable_spec_fields: frozenset[str] | None = None
    categories: tuple[str, ...] = field(default=(CATEGORY,))

    @property
    def group(self) -> str:
        """API group of every kind in this package."""
        return GROUP

    @property
    def version(self) -> str:
        """The only served and stored version."""
        return VERSION

    @property
    def crd_name(self) -> str:
        """metadata.name of the CRD: <plural>.<group>."""
        return f"{self.plural}.{GROUP}"


INCIDENT = CrdKind(
    kind=incident.KIND,
    plural=incident.PLURAL,
    singular=incident.SINGULAR,
    short_names=tuple(incident.SHORT_NAMES),
    model=incident.TradeSenseIncident,
    description="One execution of a TradeSense runbook procedure, as checkpointed steps with approvals.",
    printer_columns=(
        PrinterColumn("Severity", "string", ".spec.severity", "P1–P4."),
        PrinterColumn("Runbook", "string", ".spec.runbook", "Runbook procedure."),
        PrinterColumn("Phase", "string", ".status.phase", "Lifecycle phase."),
        PrinterColumn("Step", "string", ".status.currentStep", "Step in progress."),
        AGE,
    ),
    mutable_spec_fields=frozenset({"approvals", "cancel"}),
)

BACKUP_POLICY = CrdKind(
    kind=backup.KIND,
    plural=backup.PLURAL,
    singular=backup.SINGULAR,
    short_names=tuple(backup.SHORT_NAMES),
    model=backup.BackupPolicy,
    description="Scheduled, checksummed and verified pg_dump backups of one database, with retention.",
    printer_columns=(
        PrinterColumn("Schedule", "string", ".spec.schedule", "Cron schedule."),
        PrinterColumn("Last Success", "date", ".status.lastSuccessfulBackup", "Finish time of the newest success."),
        PrinterColumn("Size", "string", ".status.lastBackupSize", "Size of the newest successful backup."),
        PrinterColumn("Ready", "string", '.status.conditions[?(@.type=="Ready")].status', "Ready condition."),
        AGE,
    ),
)

SCALING_POLICY = CrdKind(
    kind=scaling.KIND,
    plural=scaling.PLURAL,
    singular=scaling.SINGULAR,
    short_names=tuple(scaling.SHORT_NAMES),
    model=scaling.ScalingPolicy,
    description="Prometheus-driven replica scaling of one Deployment with HPA v2 behaviour, schedules and fallback.",
    printer_columns=(
        PrinterColumn("Target", "string", ".spec.targetRef.name", "Scaled Deployment."),
        PrinterColumn("Min", "integer", ".spec.minReplicas", "Lower replica bound."),
        PrinterColumn("Max", "integer", ".spec.maxReplicas", "Upper replica bound."),
        PrinterColumn("Current", "integer", ".status.currentReplicas", "Replicas at the last evaluation."),
        PrinterColumn("Desired", "integer", ".status.desiredReplicas", "Replicas decided at the last evaluation."),
        AGE,
    ),
)

KINDS: tuple[CrdKind, ...] = (INCIDENT, BACKUP_POLICY, SCALING_POLICY)


def immutable_spec_changes(kind: CrdKind, old_spec: Mapping[str, object], new_spec: Mapping[str, object]) -> list[str]:
    """Wire names of spec fields changed although the kind forbids it (sorted; empty when allowed).

    The same check the CRD's CEL transition rules make in-cluster, for code paths that see both
    versions (update handlers, the CLI's validate). Absent and present-with-a-value count as different,
    exactly like `has(self.f) == has(oldSelf.f)`.
    """
    if kind.mutable_spec_fields is None:
        return []
    mutable = kind.mutable_spec_fields
    return sorted(
        name
        for name in set(old_spec) | set(new_spec)
        if name not in mutable and ((name in old_spec) != (name in new_spec) or old_spec.get(name) != new_spec.get(name))
    )
