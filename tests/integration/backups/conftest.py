"""Fixtures for backup tests: a uniquely named database on the shared PostgreSQL with the runbook schema.

Schema and deterministic data come from the sandbox (`sandbox/schema.py`: users; trades with user_id,
entry_date, deleted_at, created_at, updated_at; sessions), loaded with COPY.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import psutil
import psycopg
import pytest
from moto.server import ThreadedMotoServer
from psycopg import sql

from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.clients.storage import FilesystemStore, S3Location, S3Store
from tradesense_operator.domain.backups.manifest import BackupManifest
from tradesense_operator.domain.clock import ManualClock
from tradesense_operator.services.backups import dump_pipeline
from tradesense_sandbox import schema

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"

def admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True)


def drop_db(name: str) -> None:
    with admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def table_checksums(target: PgTarget) -> dict[str, str]:
    """md5 of every table's rows in primary-key order: equal checksums mean identical data."""
    with psycopg.connect(host=target.host, port=target.port, user=target.user, dbname=target.dbname) as conn:
        return {
            table: str(conn.execute(
                sql.SQL("SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t.id)), '') FROM {} t")
                .format(sql.Identifier(table))
            ).fetchone()[0])  # type: ignore[index]
            for table in schema.TABLES
        }


def make_database(users: int = 200, trades: int = 5000) -> PgTarget:
    name = f"tso_bk_{secrets.token_hex(4)}"
    with admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    target = PgTarget(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=name)
    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=name, autocommit=True) as conn:
        schema.load_schema(conn)
        schema.populate(conn, users=users, trades=trades, seed=4)
        conn.execute("INSERT INTO sessions (id, user_id, expires_at) SELECT 's' || g, 1 + g % 10, "
                     "timestamptz '2026-02-01' + g * interval '1 hour' FROM generate_series(1, 25) g")
    return target


@pytest.fixture
def source_db() -> Iterator[PgTarget]:
    """A small runbook-schema database (dropped afterwards, with any scratch copies of it)."""
    target = make_database()
    yield target
    with admin() as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (target.dbname + "%",)).fetchall()
    for (name,) in rows:
        drop_db(str(name))


@pytest.fixture
def big_source_db() -> Iterator[PgTarget]:
    """~10 MB of dump: large enough that a dump can be interrupted mid-stream."""
    target = make_database(users=2000, trades=120_000)
    yield target
    drop_db(target.dbname)


@pytest.fixture
def store(tmp_path: Path) -> FilesystemStore:
    return FilesystemStore(tmp_path / "backups")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 1, 5, 2, 0, tzinfo=UTC))


@contextlib.contextmanager
def child_killed_once_it_wrote(store: FilesystemStore, tool: str, written: str) -> Iterator[list[int]]:
    """Kill our `tool` child processes once a partial tree holds a file matching `written`: a crash mid-dump."""
    killed: list[int] = []

    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            partial = [p for p in store.root.glob(".*.partial-*") if any(p.glob(written))] \
                if store.root.exists() else []
            if partial:
                for child in psutil.Process().children(recursive=True):
                    if child.name() == tool:
                        child.kill()
                        killed.append(child.pid)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        yield killed
    finally:
        killed.append(0)
        watcher.join()


def damage_tree_file(store: FilesystemStore, manifest: BackupManifest, name: str, damage: str,
                     clock: ManualClock) -> None:
    """Flip a bit in (`flip`) or delete (`missing`) one file of a tree backup; verification must then name it."""
    path = store.root / manifest.file_name / name
    if damage == "flip":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    else:
        path.unlink()
    bad = dump_pipeline.verify_backup(store, manifest, clock=clock)
    assert not bad.verified
    assert bad.verification is not None
    assert bad.verification.integrity is False
    assert name in bad.verification.detail


def database_names(prefix: str) -> set[str]:
    with admin() as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (prefix + "%",)).fetchall()
    return {str(r[0]) for r in rows}


KEY_ID = "testing-key-id"
SECRET = "testing-secret-key"  # moto accepts any credentials


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_client(s3_endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id=KEY_ID,
                        aws_secret_access_key=SECRET)


@pytest.fixture
def s3_store(s3_endpoint: str, s3_client: Any, request: pytest.FixtureRequest) -> S3Store:
    bucket = "bk-" + request.node.name.lower().replace("_", "-").replace("[", "-").replace("]", "")[:40]
    s3_client.create_bucket(Bucket=bucket)
    return S3Store(S3Location(bucket=bucket, prefix="tradesense/prod/", endpoint=s3_endpoint,
                              access_key_id=KEY_ID, secret_access_key=SECRET))
