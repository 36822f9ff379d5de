"""PostgreSQL backup tooling: pg_dump/psql/pg_restore processes and the admin SQL around them.

The password travels only in the child's environment (PGPASSWORD) and in psycopg's connect
arguments; it never appears in argv (visible in `ps`), logs or error messages. Connection
parameters also go through the environment so argv holds nothing site-specific but database names.
Process failures become `ToolFailed` with the tool's stderr tail (which libpq keeps password-free).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, cast

import psycopg
from psycopg import sql

from tradesense_operator.clients.errors import ClientError, Conflict, Forbidden, NotFound, Unavailable

log = logging.getLogger(__name__)

PG_BIN_DIRS = ("/usr/lib/postgresql/15/bin",)
STDERR_TAIL = 2000


class ToolFailed(ClientError):
    """pg_dump, psql or pg_restore exited non-zero (or was killed)."""

    def __init__(self, tool: str, returncode: int, stderr: str) -> None:
        how = f"killed by signal {-returncode}" if returncode < 0 else f"exit status {returncode}"
        super().__init__(f"{tool} failed ({how}): {stderr.strip()[-STDERR_TAIL:]}")
        self.tool = tool
        self.returncode = returncode


def tool_path(name: str) -> str:
    """Absolute path of a PostgreSQL client binary (PATH first, then the Debian versioned dir)."""
    found = shutil.which(name)
    if found:
        return found
    for directory in PG_BIN_DIRS:
        candidate = Path(directory) / name
        if os.access(candidate, os.X_OK):
            return str(candidate)
    raise NotFound(f"PostgreSQL client tool {name!r} is not installed")


@dataclass(frozen=True)
class PgTarget:
    """Where a database lives and how to log in; `password` is excluded from repr."""

    host: str
    dbname: str
    port: int = 5432
    user: str = "postgres"
    password: str | None = field(default=None, repr=False)
    sslmode: str = "prefer"
    connect_timeout: int = 10
    # Every connection (psycopg and the tools' libpq) carries it: the handle by which one piece of work's
    # backends are found in pg_stat_activity and ended (`terminate_application`).
    application_name: str = "tradesense-operator-backup"
    options: str = ""
    """Session settings at connection start (libpq `options`, e.g. `-c maintenance_work_mem=256MB`): they apply
    to this target's sessions only, never to the database or to other sessions."""

    def with_db(self, dbname: str) -> PgTarget:
        """The same server and login, another database."""
        return replace(self, dbname=dbname)

    def admin(self) -> PgTarget:
        """The maintenance database used to create/drop others."""
        return self.with_db("postgres")

    def env(self) -> dict[str, str]:
        """Child-process environment: libpq variables instead of argv."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(
            PGHOST=self.host,
            PGPORT=str(self.port),
            PGUSER=self.user,
            PGDATABASE=self.dbname,
            PGSSLMODE=self.sslmode,
            PGCONNECT_TIMEOUT=str(self.connect_timeout),
            PGAPPNAME=self.application_name,
        )
        if self.options:
            env["PGOPTIONS"] = self.options
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        return env

    def describe(self) -> str:
        """Safe text for logs and messages (no password)."""
        return f"{self.user}@{self.host}:{self.port}/{self.dbname}"

    @contextlib.contextmanager
    def connect(self, *, autocommit: bool = True) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
        """A psycopg connection; OperationalError becomes Unavailable/Forbidden/NotFound."""
        try:
            conn = psycopg.connect(
                host=self.host, port=self.port, dbname=self.dbname, user=self.user, password=self.password,
                sslmode=self.sslmode, connect_timeout=self.connect_timeout, autocommit=autocommit,
                application_name=self.application_name, options=self.options or None,
            )
        except psycopg.OperationalError as exc:
            raise _translate_connect(exc, self) from exc
        try:
            yield conn
        finally:
            conn.close()


def _translate_connect(exc: psycopg.OperationalError, target: PgTarget) -> ClientError:
    text = str(exc)
    if "password authentication failed" in text or "no pg_hba.conf entry" in text:
        return Forbidden(f"{target.describe()}: authentication failed")
    if "does not exist" in text and "database" in text:
        return NotFound(f"{target.describe()}: database does not exist")
    return Unavailable(f"{target.describe()}: cannot connect ({type(exc).__name__})")


def _sql_error(exc: psycopg.Error, what: str) -> ClientError:
    if isinstance(exc, psycopg.errors.DuplicateDatabase):
        return Conflict(f"{what}: already exists")
    if isinstance(exc, psycopg.errors.InvalidCatalogName):
        return NotFound(f"{what}: database does not exist")
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return Forbidden(f"{what}: insufficient privilege")
    if isinstance(exc, psycopg.OperationalError):
        return Unavailable(f"{what}: {type(exc).__name__}")
    return ClientError(f"{what}: {type(exc).__name__}: {str(exc).strip()[:500]}")


# -- processes --------------------------------------------------------------------------------


class ToolProcess:
    """A running client tool with stderr spooled to a temp file (no pipe deadlock, bounded memory)."""

    def __init__(self, tool: str, args: list[str], target: PgTarget, *, stdin: bool, stdout: bool) -> None:
        self.tool = tool
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115  (closed in wait/kill)
        self.proc = subprocess.Popen(  # noqa: S603  (argv built from our own flags, no shell)
            [tool_path(tool), *args],
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
            stderr=self._stderr,
            env=target.env(),
            start_new_session=True,  # a Ctrl-C to the CLI reaches us, we decide what the child does
        )

    @property
    def pid(self) -> int:
        """Process id (tests kill it to simulate a crash mid-stream)."""
        return self.proc.pid

    @property
    def stdout(self) -> IO[bytes]:
        """The tool's output stream."""
        assert self.proc.stdout is not None
        return self.proc.stdout

    @property
    def stdin(self) -> IO[bytes]:
        """The tool's input stream."""
        assert self.proc.stdin is not None
        return self.proc.stdin

    def stderr_text(self) -> str:
        """What the tool wrote to stderr so far."""
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", errors="replace")

    def wait(self) -> None:
        """Wait for exit; ToolFailed unless it exited 0."""
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        code = self.proc.wait()
        err = self.stderr_text()
        self._stderr.close()
        if code != 0:
            raise ToolFailed(self.tool, code, err)

    def kill(self) -> None:
        """Stop it hard (used when our side of the stream failed)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            self.proc.wait(timeout=30)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._stderr.close()


def start_dump(
    target: PgTarget, *, custom: bool, compression_level: int = 0, snapshot: str | None = None
) -> ToolProcess:
    """pg_dump to stdout: plain SQL (compressed by the caller) or the custom archive (-Fc -Z<level>)."""
    args = ["--no-password", "--format=custom" if custom else "--format=plain"]
    if custom:
        args.append(f"--compress={compression_level}")
    if snapshot:
        args.append(f"--snapshot={snapshot}")
    args.append(target.dbname)
    return ToolProcess("pg_dump", args, target, stdin=False, stdout=True)


def _run(process: ToolProcess) -> None:
    """Wait for a tool that reads and writes files itself; a cancelled wait kills it."""
    try:
        process.wait()
    except BaseException:
        process.kill()
        raise


def dump_directory(
    target: PgTarget, directory: Path, *, jobs: int, compression_level: int, snapshot: str | None = None
) -> None:
    """`pg_dump -Fd -j N -Z level` into `directory` (absent or empty): one file per table, N tables at a time."""
    args = ["--no-password", "--format=directory", f"--jobs={jobs}", f"--compress={compression_level}",
            f"--file={directory}"]
    if snapshot:
        args.append(f"--snapshot={snapshot}")
    args.append(target.dbname)
    _run(ToolProcess("pg_dump", args, target, stdin=False, stdout=False))


def restore_directory(target: PgTarget, directory: Path, *, jobs: int) -> None:
    """`pg_restore -j N` of a directory archive, stopping at the first error.

    Parallel restore cannot be one transaction (each job has its own session): a failure leaves a
    partly restored database, which the callers drop (scratch restores) or redo (the restore procedure).
    """
    args = ["--no-password", "--exit-on-error", f"--jobs={jobs}", "-d", target.dbname, str(directory)]
    _run(ToolProcess("pg_restore", args, target, stdin=False, stdout=False))


def archive_listing(directory: Path) -> str:
    """`pg_restore -l` of a directory archive: its table of contents as text."""
    return _capture(["-l", str(directory)])


def archive_client_encoding(directory: Path) -> str:
    """The client encoding the archive's data files are written in (from its pre-data script)."""
    script = _capture(["--section=pre-data", "-f", "-", str(directory)])
    for line in script.splitlines():
        if line.startswith("SET client_encoding = '"):
            return line.split("'")[1]
    return "UTF8"


def _capture(args: list[str]) -> str:
    target = PgTarget(host="localhost", dbname="unused")
    process = ToolProcess("pg_restore", args, target, stdin=False, stdout=True)
    try:
        out = process.stdout.read()
        process.wait()
    except BaseException:
        process.kill()
        raise
    return out.decode("utf-8", errors="replace")


def restore_directory_section(target: PgTarget, directory: Path, *, section: str, jobs: int = 1,
                              listing: Path | None = None) -> None:
    """`pg_restore --section=S [-j N] [-L listing]` of a directory archive (or custom file), stopping at the first error."""
    args = ["--no-password", "--exit-on-error", f"--section={section}", f"--jobs={jobs}", "-d", target.dbname]
    if listing is not None:
        args.append(f"--use-list={listing}")
    args.append(str(directory))
    _run(ToolProcess("pg_restore", args, target, stdin=False, stdout=False))


def copy_columns(target: PgTarget, schema: str, table: str) -> list[str]:
    """The columns COPY data of `schema.table` holds, in pg_dump's order (attnum; no dropped or generated ones)."""
    with target.connect() as conn:
        rows = conn.execute(
            "SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s "
            "AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum",
            (schema, table),
        ).fetchall()
    if not rows:
        raise NotFound(f"table {schema}.{table} does not exist in {target.dbname}")
    return [str(r[0]) for r in rows]


def copy_statement(schema: str, table: str, columns: list[str]) -> str:
    """`COPY schema.table (columns) FROM STDIN`, every name quoted."""
    statement = sql.SQL("COPY {}.{} ({}) FROM STDIN").format(
        sql.Identifier(schema), sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns))
    return statement.as_string(None)


def copy_in(target: PgTarget, blocks: Iterable[tuple[str, bytes]], *, encoding: str | None = None,
            settings: Iterable[str] = (), before_commit: Callable[[], object] | None = None) -> None:
    """Run COPY … FROM STDIN statements in one transaction; ToolFailed on a server error.

    `blocks` are (statement, whole text-format rows); consecutive blocks of one statement are one COPY.
    `encoding` (the client encoding of the rows) and `settings` (a dump's header) are set first. `before_commit` runs after
    the server accepted every row, before COMMIT; if it raises, nothing is committed.
    """
    streams = ((statement, (data for _, data in group))
               for statement, group in itertools.groupby(blocks, key=lambda item: item[0]))
    copy_streams(target, streams, encoding=encoding, settings=settings, before_commit=before_commit)


def copy_streams(target: PgTarget, streams: Iterable[tuple[str, Iterable[bytes | memoryview]]], *,
                 encoding: str | None = None, settings: Iterable[str] = (),
                 before_commit: Callable[[], object] | None = None) -> None:
    """One COPY … FROM STDIN per (statement, data) in one transaction (binary streams each need their own COPY).

    Otherwise as copy_in; an exception raised by a data iterator (a checksum found wrong) aborts the COPY.
    """
    what = "COPY"
    with target.connect(autocommit=False) as conn:
        try:
            if encoding is not None:
                conn.execute(sql.SQL("SET client_encoding = {}").format(sql.Literal(encoding)))
            for setting in settings:
                conn.execute(setting.encode())
            with conn.cursor() as cur:
                for statement, data in streams:
                    what = statement
                    with cur.copy(statement.encode()) as copy:
                        for block in data:
                            copy.write(block)
            if before_commit is not None:
                before_commit()
            conn.commit()
        except psycopg.Error as exc:
            raise ToolFailed("COPY", 1, f"{what[:200]}: {str(exc).strip()[:500]}") from exc


def start_copy_out(target: PgTarget, query: str, *, snapshot: str, encoding: str) -> ToolProcess:
    """psql writing `COPY (query) TO STDOUT (FORMAT binary)` run in `snapshot` to its stdout.

    psql (C, one fwrite per row) rather than psycopg: reading rows one Python call each costs ~1 s of CPU
    per 100 MB. The transaction imports the exported snapshot, so every chunk sees the same data.
    """
    statements = ["BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
                  sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)).as_string(None),
                  sql.SQL("SET client_encoding = {}").format(sql.Literal(encoding)).as_string(None),
                  "SET row_security = off",  # as pg_dump: an error, never silently filtered rows, under RLS
                  f"COPY ({query}) TO STDOUT (FORMAT binary)"]
    args = ["--no-password", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", target.dbname]
    for statement in statements:
        args += ["-c", statement]
    return ToolProcess("psql", args, target, stdin=False, stdout=True)


def dump_schema(target: PgTarget, path: Path, *, snapshot: str, data_elsewhere: Sequence[tuple[str, str]]) -> None:
    """`pg_dump -Fc` into `path` without the rows of the tables in `data_elsewhere` (schema, table).

    Named one by one, not `--exclude-table-data=*`: that pattern also drops every materialized view's data
    entry (its REFRESH), so a restore would leave them unpopulated, and the rows of extension configuration
    tables, which the binary chunks do not carry.
    """
    excluded = [f"--exclude-table-data={_exact_pattern(schema)}.{_exact_pattern(table)}"
                for schema, table in data_elsewhere]
    args = ["--no-password", "--format=custom", *excluded, f"--snapshot={snapshot}", f"--file={path}",
            target.dbname]
    _run(ToolProcess("pg_dump", args, target, stdin=False, stdout=False))


def _exact_pattern(name: str) -> str:
    """A pg_dump name pattern that matches exactly `name`: inside double quotes `*`, `?` and `.` are literal."""
    return '"' + name.replace('"', '""') + '"'


def archive_has_table_data(listing: str) -> bool:
    """Whether a `pg_restore -l` listing has TABLE DATA entries (rows its data section would load)."""
    return any(" TABLE DATA " in line for line in listing.splitlines() if not line.startswith(";"))


def _feed(process: ToolProcess, chunks: Iterable[bytes]) -> None:
    try:
        for chunk in chunks:
            process.stdin.write(chunk)
    except BrokenPipeError:
        pass  # the tool exited early; wait() reports why
    except BaseException:
        process.kill()
        raise
    process.wait()


def restore_plain(target: PgTarget, sql_chunks: Iterable[bytes]) -> None:
    """Feed a plain SQL dump to psql in one transaction, stopping at the first error (all or nothing)."""
    args = ["--no-password", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-o", os.devnull,
            "-f", "-", "-d", target.dbname]
    _feed(ToolProcess("psql", args, target, stdin=True, stdout=False), sql_chunks)


def restore_custom(target: PgTarget, archive_chunks: Iterable[bytes]) -> None:
    """Feed a custom-format archive to pg_restore in one transaction, stopping at the first error."""
    args = ["--no-password", "--exit-on-error", "--single-transaction", "-d", target.dbname]
    _feed(ToolProcess("pg_restore", args, target, stdin=True, stdout=False), archive_chunks)


def run_script(target: PgTarget, script: str) -> None:
    """Run SQL statements (no parameters) in one transaction over a connection: no psql process to start."""
    with target.connect(autocommit=False) as conn:
        try:
            conn.execute(script.encode())
            conn.commit()
        except psycopg.Error as exc:
            raise ToolFailed("SQL", 1, str(exc).strip()[:500]) from exc


def check_custom_archive(archive_chunks: Iterable[bytes]) -> None:
    """Read a whole custom archive (decompressing every data block) without touching a database."""
    target = PgTarget(host="localhost", dbname="unused")
    _feed(ToolProcess("pg_restore", ["-f", os.devnull], target, stdin=True, stdout=False), archive_chunks)


# -- SQL ----------------------------------------------------------------------------------------


def database_exists(target: PgTarget, name: str) -> bool:
    """Whether `name` exists on target's server."""
    with target.admin().connect() as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None


def create_database(target: PgTarget, name: str, *, comment: str | None = None) -> None:
    """CREATE DATABASE (owned by the connecting role), optionally with a COMMENT marker."""
    with target.admin().connect() as conn:
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            if comment is not None:
                conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(comment)))
        except psycopg.Error as exc:
            raise _sql_error(exc, f"create database {name}") from exc


def drop_database(target: PgTarget, name: str) -> bool:
    """DROP DATABASE IF EXISTS … WITH (FORCE) (terminates sessions); True when something was dropped."""
    with target.admin().connect() as conn:
        try:
            existed = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        except psycopg.Error as exc:
            raise _sql_error(exc, f"drop database {name}") from exc
    return existed


def database_comment(target: PgTarget, name: str) -> str | None:
    """COMMENT ON DATABASE text (our progress marker), or None; NotFound if the database is absent."""
    with target.admin().connect() as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
    if row is None:
        raise NotFound(f"database {name} does not exist")
    return None if row[0] is None else str(row[0])


def set_database_comment(target: PgTarget, name: str, comment: str) -> None:
    """Write the progress marker."""
    with target.admin().connect() as conn:
        try:
            conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(comment)))
        except psycopg.Error as exc:
            raise _sql_error(exc, f"comment on database {name}") from exc


def terminate_connections(target: PgTarget, name: str) -> int:
    """pg_terminate_backend for every other session on `name`; returns how many were ended."""
    with target.admin().connect() as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    return sum(1 for (ok,) in rows if ok)


def terminate_application(target: PgTarget, application_name: str) -> int:
    """pg_terminate_backend for every session (any database) with `application_name`; how many were ended."""
    with target.admin().connect() as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %s AND pid <> pg_backend_pid()",
            (application_name,),
        ).fetchall()
    return sum(1 for (ok,) in rows if ok)


_TABLES = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY 1, 2
"""


def _count_tables(conn: psycopg.Connection[tuple[object, ...]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for schema, table in conn.execute(_TABLES).fetchall():
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM ONLY {}.{}").format(sql.Identifier(str(schema)), sql.Identifier(str(table)))
        ).fetchone()
        counts[f"{schema}.{table}"] = int(str(row[0])) if row else 0
    return counts


def table_counts(target: PgTarget) -> dict[str, int]:
    """Rows per user table ("schema.table" → count)."""
    with target.connect() as conn:
        try:
            return _count_tables(conn)
        except psycopg.Error as exc:
            raise _sql_error(exc, f"count rows in {target.dbname}") from exc


@contextlib.contextmanager
def exported_snapshot(target: PgTarget, *, count_rows: bool) -> Iterator[tuple[str, dict[str, int]]]:
    """Hold a REPEATABLE READ transaction open and export its snapshot for `pg_dump --snapshot`.

    Row counts taken here see exactly the data the dump sees, so a test restore can compare them.
    """
    with target.connect(autocommit=False) as conn:
        try:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            row = conn.execute("SELECT pg_export_snapshot()").fetchone()
            snapshot = str(row[0]) if row else ""
            counts = _count_tables(conn) if count_rows else {}
        except psycopg.Error as exc:
            raise _sql_error(exc, f"export snapshot of {target.dbname}") from exc
        try:
            yield snapshot, counts
        finally:
            with contextlib.suppress(psycopg.Error):
                conn.rollback()


_DATA_TABLES = """
SELECT n.nspname, c.relname, c.oid::regclass::text,
       array(SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
             AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum)::text[],
       pg_relation_size(c.oid) / current_setting('block_size')::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                  AND d.deptype = 'e')
ORDER BY 1, 2
"""


_SEQUENCES = """
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'S' AND c.relpersistence <> 't'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                  AND d.deptype = 'e')
ORDER BY 1
"""


def _sequence_values(conn: psycopg.Connection[tuple[object, ...]]) -> str:
    """`SELECT pg_catalog.setval(…);` per sequence with its last_value and is_called (as pg_dump reads them)."""
    lines: list[str] = []
    for (name,) in conn.execute(_SEQUENCES).fetchall():
        row = conn.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(sql.SQL(str(name)))).fetchone()
        if row is not None:
            statement = sql.SQL("SELECT pg_catalog.setval({}, {}, {});").format(
                sql.Literal(str(name)), sql.Literal(int(str(row[0]))), sql.Literal(bool(row[1])))
            lines.append(statement.as_string(None) + "\n")
    return "".join(lines)


_OID_BOUND_COLUMNS = """
WITH RECURSIVE resolved(oid, base) AS (  -- every type with the type its values are sent as (domains: their base)
    SELECT oid, oid FROM pg_type WHERE typtype <> 'd'
    UNION ALL
    SELECT d.oid, r.base FROM pg_type d JOIN resolved r ON r.oid = d.typbasetype WHERE d.typtype = 'd'
)
SELECT format('%I.%I.%I (%s)', n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod))
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN resolved r ON r.oid = a.atttypid JOIN pg_type t ON t.oid = r.base
LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
WHERE c.relkind = 'r' AND c.relpersistence <> 't' AND a.attnum > 0 AND NOT a.attisdropped
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
  AND (t.typtype = 'c' OR e.typtype = 'c' OR (e.oid IS NOT NULL AND e.oid >= 16384))
ORDER BY 1
"""
"""Columns whose binary form names type OIDs (composites, arrays of composite or user-defined types, and domains
over any of them): another database has other OIDs, so binary COPY cannot carry them."""


@dataclass(frozen=True)
class SnapshotContents:
    """What a binary dump copies: user tables as (schema, table, columns, pages), the encoding, sequence values."""

    tables: list[tuple[str, str, list[str], int]]
    encoding: str
    sequences_sql: str
    """`SELECT pg_catalog.setval(…);` per sequence: pg_dump leaves the values of owned sequences out of a dump
    without table data, so they are taken here."""
    large_objects: bool


@contextlib.contextmanager
def snapshot_contents(target: PgTarget, snapshot: str) -> Iterator[SnapshotContents]:
    """The tables, encoding and sequence values seen in `snapshot`.

    The session stays open, holding ACCESS SHARE locks on the tables (as pg_dump does), until the context
    ends, so no table is dropped or rewritten while its chunks are dumped.
    """
    with target.connect(autocommit=False) as conn:
        try:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
            bound = [str(r[0]) for r in conn.execute(_OID_BOUND_COLUMNS).fetchall()]
            if bound:
                raise ClientError(f"the binary format cannot carry {', '.join(bound[:5])}: their binary form names "
                                  "type OIDs, which differ in another database; use the directory format")
            rows = conn.execute(_DATA_TABLES).fetchall()
            for row in rows:
                conn.execute(sql.SQL("LOCK TABLE ONLY {} IN ACCESS SHARE MODE").format(sql.SQL(str(row[2]))))
            encoding_row = conn.execute("SHOW server_encoding").fetchone()
            sequences = _sequence_values(conn)
            lobs = conn.execute("SELECT EXISTS (SELECT 1 FROM pg_largeobject_metadata)").fetchone()
        except psycopg.Error as exc:
            raise _sql_error(exc, f"list the tables of {target.dbname}") from exc
        tables = [(str(r[0]), str(r[1]), [str(c) for c in cast("list[object]", r[3])], int(str(r[4]))) for r in rows]
        try:
            yield SnapshotContents(tables, str(encoding_row[0]) if encoding_row else "UTF8", sequences,
                                   lobs is None or bool(lobs[0]))
        finally:
            with contextlib.suppress(psycopg.Error):
                conn.rollback()


def analyze(target: PgTarget) -> None:
    """ANALYZE the whole database (fresh planner statistics after a restore)."""
    with target.connect() as conn:
        try:
            conn.execute("ANALYZE")
        except psycopg.Error as exc:
            raise _sql_error(exc, f"ANALYZE on {target.dbname}") from exc
