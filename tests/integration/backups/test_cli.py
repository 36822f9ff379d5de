"""`tradesense-operator backup run|verify|list|restore` as a process, against real PostgreSQL.

Covers: run → list → verify → restore round trip with identical tables; retention flags; clear errors
and exit status 2 for bad input (missing password file, two storages, unconfirmed restore); a verify of
a corrupted file exits 1; the CLI killed mid-dump leaves only a temporary file that list, restore and
retention ignore (and the sweep removes).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.clients.storage import FilesystemStore
from tradesense_operator.services.backups import dump_pipeline
from tradesense_operator.services.backups.restore import RestoreRefused, find_clean_backup_sync
from tradesense_operator.services.backups.retention import sweep_leftovers

from .conftest import table_checksums


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tradesense_operator", "backup", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=120, check=False)


def conn(db: PgTarget) -> list[str]:
    return ["--host", db.host, "--port", str(db.port), "--user", db.user, "--dbname", db.dbname]


def test_run_list_verify_restore(source_db: PgTarget, tmp_path: Path) -> None:
    store = ["--storage-path", str(tmp_path / "bk")]
    before = table_checksums(source_db)
    first = cli("run", *conn(source_db), *store, "--label", "tradesense", "--test-restore")
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["verified"] is True
    assert "identical row counts" in summary["verification"]
    listing = cli("list", *store, "--json")
    assert [b["id"] for b in json.loads(listing.stdout)] == [summary["id"]]
    assert cli("verify", *conn(source_db), *store).returncode == 0
    import psycopg

    with psycopg.connect(host=source_db.host, user=source_db.user, dbname=source_db.dbname, autocommit=True) as c:
        c.execute("DELETE FROM trades WHERE id > 100")
    refused = cli("restore", *conn(source_db), *store)
    assert refused.returncode == 2
    assert "--yes" in refused.stderr
    restored = cli("restore", *conn(source_db), *store, "--label", "tradesense", "--yes")
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["restored"] == summary["id"]
    assert table_checksums(source_db) == before


def test_retention_flags_keep_the_newest(source_db: PgTarget, tmp_path: Path) -> None:
    store = ["--storage-path", str(tmp_path / "bk")]
    for _ in range(3):
        assert cli("run", *conn(source_db), *store, "--format", "custom", "--keep-last", "2").returncode == 0
    assert len(dump_pipeline.list_backups(FilesystemStore(tmp_path / "bk"))) == 2


def test_bad_input_is_reported_clearly(source_db: PgTarget, tmp_path: Path) -> None:
    missing = cli("run", *conn(source_db), "--storage-path", str(tmp_path), "--password-file", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert "--password-file" in missing.stderr
    assert "Traceback" not in missing.stderr
    both = cli("list", "--storage-path", str(tmp_path), "--s3-bucket", "b")
    assert both.returncode == 2
    assert "exactly one" in both.stderr
    nothing = cli("verify", *conn(source_db), "--storage-path", str(tmp_path / "empty"))
    assert nothing.returncode == 2
    assert "no complete backup" in nothing.stderr
    bad_label = cli("run", *conn(source_db), "--storage-path", str(tmp_path), "--label", "Not OK")
    assert bad_label.returncode == 2
    assert "--label" in bad_label.stderr
    bad_age = cli("run", *conn(source_db), "--storage-path", str(tmp_path), "--max-age", "a week")
    assert bad_age.returncode == 2
    assert "--max-age" in bad_age.stderr
    wrong_db = cli("run", "--host", "127.0.0.1", "--user", "postgres", "--dbname", "no_such_db_here",
                   "--storage-path", str(tmp_path / "x"))
    assert wrong_db.returncode == 1
    assert "does not exist" in wrong_db.stderr


def test_verify_of_corrupted_backup_fails(source_db: PgTarget, tmp_path: Path) -> None:
    store = ["--storage-path", str(tmp_path / "bk")]
    summary = json.loads(cli("run", *conn(source_db), *store).stdout)
    path = Path(summary["location"])
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    result = cli("verify", *conn(source_db), *store)
    assert result.returncode == 1
    assert json.loads(result.stdout)["verified"] is False


def test_killed_cli_leaves_nothing_that_looks_like_a_backup(big_source_db: PgTarget, tmp_path: Path) -> None:
    directory = tmp_path / "bk"
    proc = subprocess.Popen([sys.executable, "-m", "tradesense_operator", "backup", "run", *conn(big_source_db),
                             "--storage-path", str(directory), "--label", "tradesense", "--compression-level", "9"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    partial: list[Path] = []
    while time.monotonic() < deadline and not partial:
        partial = [p for p in directory.glob(".*partial*") if p.stat().st_size > 0] if directory.exists() else []
        time.sleep(0.005)
    assert partial, "the dump never started writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = FilesystemStore(directory)
    assert dump_pipeline.list_backups(store) == []
    assert not list(directory.glob("*.manifest.json"))
    with pytest.raises(RestoreRefused, match="no complete backup"):
        find_clean_backup_sync(store, label="tradesense")
    assert sweep_leftovers(store, "tradesense", older_than=time.time() + 1) == [p.name for p in partial]
    assert list(directory.iterdir()) == []


def test_formats_through_the_cli_are_listed_and_restored(source_db: PgTarget, tmp_path: Path) -> None:
    store = ["--storage-path", str(tmp_path / "bk"), "--label", "tradesense"]
    before = table_checksums(source_db)
    ids = {}
    for fmt in ("plain-zstd", "directory", "binary"):
        result = cli("run", *conn(source_db), *store, "--format", fmt, "--jobs", "2", "--test-restore")
        assert result.returncode == 0, result.stderr
        ids[fmt] = json.loads(result.stdout)["id"]
        time.sleep(1.05)  # ids are per second
    table = cli("list", *store)
    rows = {line.split()[0]: line.split()[3] for line in table.stdout.splitlines()[1:]}
    assert rows == {ids["plain-zstd"]: "plain-zstd", ids["directory"]: "directory", ids["binary"]: "binary"}
    assert table.stdout.splitlines()[0].split()[3] == "FORMAT"
    bad_level = cli("run", *conn(source_db), *store, "--format", "plain-gzip", "--compression-level", "12")
    assert bad_level.returncode == 2
    assert "--compression-level" in bad_level.stderr
    with psycopg.connect(host=source_db.host, user=source_db.user, dbname=source_db.dbname, autocommit=True) as c:
        c.execute("DELETE FROM trades WHERE id > 100")
    for fmt in ("directory", "binary"):
        restored = cli("restore", *conn(source_db), *store, "--id", ids[fmt], "--jobs", "2", "--yes")
        assert restored.returncode == 0, restored.stderr
        assert table_checksums(source_db) == before
        with psycopg.connect(host=source_db.host, user=source_db.user, dbname=source_db.dbname,
                             autocommit=True) as c:
            c.execute("DELETE FROM trades WHERE id > 100")
