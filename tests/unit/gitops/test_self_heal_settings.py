"""The shipped GitOps settings (deploy/gitops) parse and ignore exactly what incidents change in Deployments."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from tradesense_operator.clients.kube import FIELD_MANAGER
from tradesense_operator.domain.scaling.floor import SCALE_FLOOR_ANNOTATION
from tradesense_operator.services.step_adapters.base import STAMP_ANNOTATION
from tradesense_operator.services.step_adapters.workloads import REMEMBERED_REPLICAS_ANNOTATION, RESTARTED_AT
from tradesense_sandbox.kubeapi.patching import apply_patch

GITOPS = Path(__file__).resolve().parents[3] / "deploy" / "gitops"
DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "backend"},
    "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "backend"}},
             "template": {"metadata": {"labels": {"app": "backend"}},
                          "spec": {"containers": [{"name": "backend", "image": "tradesense/backend:1"}]}}},
}


def _pointer(path: str) -> str:
    return path.replace("~", "~0").replace("/", "~1")


def test_argocd_application_ignores_the_operators_fields_and_respects_it_on_sync() -> None:
    app = yaml.safe_load((GITOPS / "argocd" / "application-tradesense.yaml").read_text(encoding="utf-8"))
    assert app["apiVersion"] == "argoproj.io/v1alpha1"
    assert app["kind"] == "Application"
    rules = [r for r in app["spec"]["ignoreDifferences"] if (r["group"], r["kind"]) == ("apps", "Deployment")]
    assert [m for r in rules for m in r.get("managedFieldsManagers", [])] == [FIELD_MANAGER]
    pointers = {p for r in rules for p in r.get("jsonPointers", [])}
    assert {
        "/spec/replicas",
        f"/spec/template/metadata/annotations/{_pointer(RESTARTED_AT)}",
        f"/spec/template/metadata/annotations/{_pointer(STAMP_ANNOTATION)}",
        f"/metadata/annotations/{_pointer(SCALE_FLOOR_ANNOTATION)}",
        f"/metadata/annotations/{_pointer(REMEMBERED_REPLICAS_ANNOTATION)}",
    } <= pointers
    jq = " ".join(e for r in rules for e in r.get("jqPathExpressions", []))
    assert all(f'"{var}"' in jq for var in ("READ_ONLY", "WORKERS", "SECURITY_AUDIT"))
    assert jq.count("(") == jq.count(")")
    sync = app["spec"]["syncPolicy"]
    assert sync["automated"]["selfHeal"] is True
    assert "RespectIgnoreDifferences=true" in sync["syncOptions"]


def test_flux_kustomization_takes_replicas_out_of_what_it_applies() -> None:
    kustomization = yaml.safe_load((GITOPS / "flux" / "kustomization.yaml").read_text(encoding="utf-8"))
    assert kustomization["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1"
    assert kustomization["kind"] == "Kustomization"
    [entry] = kustomization["spec"]["patches"]
    assert entry["target"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    patch = yaml.safe_load(entry["patch"])
    patched = apply_patch(copy.deepcopy(DEPLOYMENT), "application/strategic-merge-patch+json",
                          {"spec": patch["spec"]}, strategic_allowed=True)
    assert "replicas" not in patched["spec"]
    assert patched["spec"]["template"] == DEPLOYMENT["spec"]["template"]
    without = copy.deepcopy(DEPLOYMENT)
    del without["spec"]["replicas"]
    assert apply_patch(without, "application/strategic-merge-patch+json", {"spec": patch["spec"]},
                       strategic_allowed=True) == without
