"""The plugin finds the user's kubeconfig and namespace the way kubectl does, and says so when it cannot."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tradesense_operator.console.cluster import KubeconfigError, context_namespace, kubeconfig_path


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "config"
    cluster = {"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "clusters": [cluster], "users": [{"name": "alice", "user": {"token": "t"}}],
        "contexts": [{"name": "oncall", "context": {"cluster": "c", "user": "alice", "namespace": "tradesense"}},
                     {"name": "bare", "context": {"cluster": "c", "user": "alice"}}],
        "current-context": "oncall",
    }))
    return path


def test_the_contexts_namespace_is_the_default(kubeconfig: Path) -> None:
    assert context_namespace(str(kubeconfig), None) == "tradesense"
    assert context_namespace(str(kubeconfig), "bare") == "default"


def test_unknown_context_and_missing_file_are_one_line_errors(kubeconfig: Path, tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError, match="no context named 'prod'"):
        context_namespace(str(kubeconfig), "prod")
    with pytest.raises(KubeconfigError, match="no such file"):
        context_namespace(str(tmp_path / "absent"), None)


def test_kubeconfig_lookup_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", "/a/first:/b/second")
    assert kubeconfig_path("/explicit") == "/explicit"
    assert kubeconfig_path(None) == "/a/first"
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.setenv("HOME", "/home/alice")
    assert kubeconfig_path(None) == "/home/alice/.kube/config"
