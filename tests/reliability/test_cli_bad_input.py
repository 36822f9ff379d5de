"""The CLI under malformed input: clear one-line errors (never a traceback), a non-zero exit code, and
nothing written. Complements tests/unit/incident/test_plan_cli.py (YAML syntax, wrong kinds, invalid
specs, missing file) and tests/integration/backups/test_cli.py (bad flags, exit codes) with: inputs that
are not text, pathological YAML (alias bombs, deep nesting, duplicate keys), and `backup` invocations
whose failure must leave the storage directory exactly as it was.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.backups.conftest import source_db
from tradesense_operator.cli import main
from tradesense_operator.clients.pgdump import PgTarget

__all__ = ["source_db"]  # fixture re-used from the backup integration tests



def plan(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes) -> tuple[int, str, str]:
    path = tmp_path / "incident.yaml"
    path.write_bytes(content)
    code = main(["plan", "-f", str(path)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_directory_instead_of_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "-f", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "cannot read" in captured.err


def test_an_alias_bomb_fails_fast_naming_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    levels = ["a: &a [x, x, x, x, x, x, x, x, x]"] + [
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(7)]
    text = "\n".join([*levels, "kind: TradeSenseIncident", "metadata: {name: bomb}",
                      "spec: {runbook: custom, steps: *h}", ""])
    code, out, err = plan(tmp_path, capsys, text.encode())
    assert code == 1
    assert out == ""
    assert err.startswith("error: ")
    assert len(err) < 10_000  # one message, not 43 million expanded steps


def test_a_binary_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = plan(tmp_path, capsys, bytes(range(128, 256)) * 4)
    assert (code, out) == (1, "")
    assert "not UTF-8" in err or "not text" in err


def test_deeply_nested_yaml_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = plan(tmp_path, capsys, b"kind: TradeSenseIncident\nspec: " + b"[" * 5000 + b"]" * 5000 + b"\n")
    assert (code, out) == (1, "")
    assert err.startswith("error: ")


def test_duplicate_keys_are_refused_like_kubectl_does(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = b"kind: TradeSenseIncident\nmetadata: {name: a}\nspec: {runbook: high-cpu, runbook: site-down}\n"
    code, out, err = plan(tmp_path, capsys, text)
    assert (code, out) == (1, "")
    assert "runbook" in err


def backup(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tradesense_operator", "backup", *args], capture_output=True,
                          text=True, timeout=120, check=False)


def snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*")} if root.exists() else {}


def test_failed_backup_invocations_write_nothing(source_db: PgTarget, tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    conn = ["--host", source_db.host, "--port", str(source_db.port), "--user", source_db.user,
            "--dbname", source_db.dbname]
    attempts = {
        "missing password file": ([*conn, "--password-file", str(tmp_path / "absent")], 2),
        "bad label": ([*conn, "--label", "../escape"], 2),
        "closed port": (["--host", "127.0.0.1", "--port", "1", "--user", "u", "--dbname", "d"], 1),
        "missing database": (["--host", source_db.host, "--user", source_db.user, "--dbname", "no_such_db_h11"], 1),
        "bad compression level": ([*conn, "--compression-level", "11"], 2),
    }
    for what, (args, expected) in attempts.items():
        result = backup("run", *args, "--storage-path", str(store))
        assert result.returncode == expected, (what, result.stderr)
        assert "Traceback" not in result.stderr, what
        assert result.stderr.strip(), what
        assert snapshot(store) == {}, f"{what} left {snapshot(store)}"
    refused = backup("restore", *conn, "--storage-path", str(store))
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr
    assert snapshot(store) == {}
