"""PostgreSQL adapter for the runbook's `psql`/`pg_isready` commands (psycopg 3, async).

One short-lived autocommit connection per call, not a pool, because:
- runbook steps call this a handful of times per incident; connection setup is noise next to that;
- the target database is the thing being restarted (complete-failure) or exhausted (db-pool-exhausted):
  a pool would hold stale sockets across a restart and occupy slots the application is starving for;
- VACUUM, ALTER SYSTEM, REINDEX ... CONCURRENTLY and CREATE INDEX CONCURRENTLY must run outside a
  transaction block, which autocommit guarantees.

The password is held apart from `PgConnectionInfo` so that reprs, logs and evidence never contain it, and
it is scrubbed from every error message before one of `clients.errors` is raised.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, LiteralString, NoReturn

import psycopg
from psycopg import errors as pg_errors
from psycopg import pq, sql
from psycopg.conninfo import make_conninfo

from tradesense_operator.clients.errors import (
    ClientError,
    Conflict,
    ExtensionMissing,
    Forbidden,
    Invalid,
    NotFound,
    Timeout,
    Unavailable,
)
from tradesense_operator.clients.pg_predicate import IDENTIFIER, compile_predicate

log = logging.getLogger(__name__)

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
QUERY_TEXT_LIMIT = 2000  # query texts end up in step evidence; keep them bounded
MAX_IDENTIFIER_BYTES = 63  # PostgreSQL silently truncates longer names, which would break idempotency checks
_PASSWORD_IN_DSN = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_DOLLAR_QUOTED = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$.*?\$\1\$", re.DOTALL)
_QUOTED = re.compile(r"'(?:[^']|'')*'")


@dataclass(frozen=True)
class PgConnectionInfo:
    """Where and as whom to connect; deliberately has no password field (see `PostgresClient`)."""

    host: str
    port: int = 5432
    dbname: str = "tradesense"
    user: str = "tradesense"
    sslmode: str = "prefer"
    connect_timeout: int = 5

    def __post_init__(self) -> None:
        if not self.host:
            raise Invalid("host: must not be empty")
        if not 0 < self.port < 65536:
            raise Invalid(f"port: must be between 1 and 65535, got {self.port}")
        if not self.dbname:
            raise Invalid("dbname: must not be empty")
        if not self.user:
            raise Invalid("user: must not be empty")
        if self.sslmode not in SSL_MODES:
            raise Invalid(f"sslmode: must be one of {', '.join(SSL_MODES)}, got {self.sslmode!r}")
        if self.connect_timeout < 1:
            raise Invalid(f"connect_timeout: must be at least 1 second, got {self.connect_timeout}")


class ReadyState(enum.Enum):
    """pg_isready's answers: the server accepts connections, is up but refusing (starting/stopping), or is silent."""

    ACCEPTING = "accepting"
    REJECTING = "rejecting"
    NO_RESPONSE = "no-response"


class IndexState(enum.Enum):
    """Whether an index exists, and if so whether PostgreSQL may use it (INVALID = failed concurrent build)."""

    ABSENT = "absent"
    VALID = "valid"
    INVALID = "invalid"


class IndexOutcome(enum.Enum):
    """What `create_index_concurrently` did, for the step's message."""

    CREATED = "created"
    ALREADY_PRESENT = "already-present"
    RECREATED = "recreated"  # an INVALID leftover of an earlier attempt was dropped first


@dataclass(frozen=True)
class SlowQuery:
    """A row of pg_stat_statements; string literals in `query` are redacted (utility statements keep them)."""

    query: str
    calls: int
    mean_exec_ms: float
    total_exec_ms: float


@dataclass(frozen=True)
class IndexCandidate:
    """A column the runbook's pg_stats heuristic flags (many distinct values, poorly correlated)."""

    schema: str
    table: str
    column: str
    distinct_estimate: float  # estimated number of distinct values (pg_stats' negative fractions resolved)
    correlation: float | None


@dataclass(frozen=True)
class IdleTransaction:
    """A backend sitting 'idle in transaction': the usual connection leak behind an exhausted pool."""

    pid: int
    user: str | None
    database: str | None
    application_name: str
    client_addr: str | None
    idle_seconds: float
    query: str


@dataclass(frozen=True)
class TableSize:
    """On-disk size of a table including its indexes and TOAST."""

    schema: str
    table: str
    total_bytes: int


@dataclass(frozen=True)
class DamageAssessment:
    """The runbook's data-corruption counts; a count is None when its table does not exist."""

    window_seconds: float
    trades_created: int | None
    users_updated: int | None
    missing_tables: tuple[str, ...]


@dataclass(frozen=True)
class _IndexInfo:
    valid: bool
    table: str
    columns: tuple[str, ...]
    building_pid: int | None


def redact_sql_literals(text: str) -> str:
    """Replace quoted literals: pg_stat_statements keeps utility statements (e.g. ALTER ROLE ... PASSWORD) verbatim."""
    text = _DOLLAR_QUOTED.sub("$$***$$", text)
    text = _QUOTED.sub("'***'", text)
    return text if len(text) <= QUERY_TEXT_LIMIT else text[: QUERY_TEXT_LIMIT - 1] + "…"


def _check_identifier(value: str, field: str) -> str:
    if not IDENTIFIER.fullmatch(value) or len(value.encode()) > MAX_IDENTIFIER_BYTES:
        raise Invalid(f"{field}: {value!r} must be a lower-case PostgreSQL identifier of at most 63 bytes")
    return value


_TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57", "40")  # connection, resources, operator intervention, rollback


class PostgresClient:
    """Runbook operations against one database; every call opens and closes its own connection."""

    def __init__(self, info: PgConnectionInfo, password: str | None = None) -> None:
        self.info = info
        self._password = password

    def __repr__(self) -> str:
        return f"PostgresClient({self.info!r}, password={'***' if self._password else None})"

    # -- plumbing -------------------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        if self._password:
            text = text.replace(self._password, "***")
        return _PASSWORD_IN_DSN.sub(r"\1***", text)

    def _raise(self, exc: psycopg.Error, what: str) -> NoReturn:
        raw = str(exc).strip()
        first = raw.splitlines()[0] if raw else type(exc).__name__
        message = f"{what} on {self.info.host}:{self.info.port}/{self.info.dbname}: {self._scrub(first)}"
        error = self._classify(exc, raw.lower(), message)
        if self._scrub(raw) != raw:
            raise error from None  # the library's message held a secret: do not chain it into tracebacks
        raise error from exc

    @staticmethod
    def _classify(exc: psycopg.Error, lowered: str, message: str) -> ClientError:
        state = exc.sqlstate or ""
        if isinstance(exc, pg_errors.QueryCanceled):
            return Timeout(message)
        if isinstance(exc, pg_errors.InsufficientPrivilege) or state.startswith("28"):  # 28xxx: authentication
            return Forbidden(message)
        if isinstance(exc, pg_errors.InvalidCatalogName):
            return NotFound(message)
        if isinstance(exc, psycopg.OperationalError) and not state:
            # connection-time failures carry no SQLSTATE; tell auth and missing-database apart by message
            if "database" in lowered and "does not exist" in lowered:
                return NotFound(message)
            if (
                "authentication" in lowered
                or "pg_hba.conf" in lowered
                or ('role "' in lowered and "does not exist" in lowered)
            ):
                return Forbidden(message)
            return Timeout(message) if "timeout" in lowered else Unavailable(message)
        if isinstance(exc, psycopg.InterfaceError | pg_errors.LockNotAvailable) or state.startswith(
            _TRANSIENT_SQLSTATE_CLASSES
        ):
            return Unavailable(message)
        if isinstance(exc, pg_errors.UndefinedColumn | pg_errors.UndefinedObject | pg_errors.UndefinedTable):
            return NotFound(message)
        if isinstance(exc, pg_errors.DuplicateObject | pg_errors.DuplicateTable | pg_errors.UniqueViolation):
            return Conflict(message)
        if isinstance(exc, pg_errors.DataError | pg_errors.SyntaxErrorOrAccessRuleViolation):
            return Invalid(message)
        return ClientError(message)

    @asynccontextmanager
    async def _connection(self, what: str) -> AsyncIterator[psycopg.AsyncConnection[tuple[Any, ...]]]:
        try:
            conn = await psycopg.AsyncConnection.connect(
                host=self.info.host,
                port=self.info.port,
                dbname=self.info.dbname,
                user=self.info.user,
                password=self._password,
                sslmode=self.info.sslmode,
                connect_timeout=self.info.connect_timeout,
                application_name="tradesense-operator",
                autocommit=True,
            )
        except psycopg.Error as exc:
            self._raise(exc, what)
        try:
            yield conn
        except psycopg.Error as exc:
            self._raise(exc, what)
        finally:
            await conn.close()

    async def _fetch(
        self, what: str, query: LiteralString | sql.SQL | sql.Composed, params: Sequence[Any] = ()
    ) -> list[tuple[Any, ...]]:
        async with self._connection(what) as conn:
            cursor = await conn.execute(query, params)
            return await cursor.fetchall()

    async def _execute(self, what: str, query: LiteralString | sql.SQL | sql.Composed, params: Sequence[Any] = ()) -> None:
        async with self._connection(what) as conn:
            await conn.execute(query, params)

    # -- health ---------------------------------------------------------------------------------------

    async def is_ready(self) -> ReadyState:
        """The equivalent of `pg_isready`: PQping, which needs no password and never raises for a down server."""
        conninfo = make_conninfo(
            "",
            host=self.info.host,
            port=self.info.port,
            dbname=self.info.dbname,
            user=self.info.user,
            connect_timeout=self.info.connect_timeout,
        )
        result = await asyncio.to_thread(pq.PGconn.ping, conninfo.encode())
        if result == pq.Ping.OK:
            return ReadyState.ACCEPTING
        if result == pq.Ping.REJECT:
            return ReadyState.REJECTING
        if result == pq.Ping.NO_RESPONSE:
            return ReadyState.NO_RESPONSE
        raise Invalid(f"connection parameters for {self.info.host}:{self.info.port} are invalid (pg_isready: no attempt)")

    # -- statistics and settings ----------------------------------------------------------------------

    async def slow_queries(self, min_mean_ms: float = 100.0, limit: int = 20) -> list[SlowQuery]:
        """The runbook's pg_stat_statements query; `ExtensionMissing` says exactly what is missing and how to fix it."""
        if min_mean_ms < 0:
            raise Invalid(f"min_mean_ms: must be >= 0, got {min_mean_ms}")
        if not 1 <= limit <= 1000:
            raise Invalid(f"limit: must be between 1 and 1000, got {limit}")
        what = "reading pg_stat_statements"
        async with self._connection(what) as conn:
            cursor = await conn.execute(
                "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
                " WHERE e.extname = 'pg_stat_statements'"
            )
            row = await cursor.fetchone()
            if row is None:
                raise ExtensionMissing(
                    f"pg_stat_statements is not installed in database {self.info.dbname!r}: run "
                    "CREATE EXTENSION pg_stat_statements (the server must also list it in shared_preload_libraries)"
                )
            query = sql.SQL(
                "SELECT query, calls, mean_exec_time, total_exec_time FROM {} WHERE mean_exec_time > %s"
                " ORDER BY mean_exec_time DESC LIMIT %s"
            ).format(sql.Identifier(row[0], "pg_stat_statements"))
            try:
                cursor = await conn.execute(query, (min_mean_ms, limit))
            except pg_errors.ObjectNotInPrerequisiteState as exc:
                raise ExtensionMissing(
                    f"pg_stat_statements is installed in database {self.info.dbname!r} but not loaded: add it to "
                    "shared_preload_libraries and restart PostgreSQL"
                ) from exc
            rows = await cursor.fetchall()
        return [SlowQuery(redact_sql_literals(q or ""), int(c), float(m), float(t)) for q, c, m, t in rows]

    async def get_setting(self, name: str) -> str:
        """`SHOW name`, as text; `NotFound` for an unknown parameter."""
        if not name or len(name) > 200:
            raise Invalid(f"name: {name!r} is not a configuration parameter name")
        rows = await self._fetch(f"reading setting {name}", "SELECT current_setting(%s)", (name,))
        return str(rows[0][0])

    async def set_log_min_duration(self, ms: int) -> int:
        """ALTER SYSTEM log_min_duration_statement + reload; returns the previous value in ms (-1 = off).

        Idempotent: when the effective value already equals `ms` nothing is written. A caller that needs the
        value from before its first attempt must record the returned value before retrying.
        """
        if not -1 <= ms <= 2_147_483_647:
            raise Invalid(f"log_min_duration_statement: must be -1 (off) or a number of milliseconds, got {ms}")
        what = "setting log_min_duration_statement"
        async with self._connection(what) as conn:
            cursor = await conn.execute("SELECT setting FROM pg_settings WHERE name = 'log_min_duration_statement'")
            row = await cursor.fetchone()
            previous = int(row[0]) if row else -1
            if previous != ms:
                await conn.execute(sql.SQL("ALTER SYSTEM SET log_min_duration_statement = {}").format(sql.Literal(ms)))
                await conn.execute("SELECT pg_reload_conf()")
                log.info("log_min_duration_statement %s -> %s ms on %s:%s", previous, ms, self.info.host, self.info.port)
        return previous

    # -- maintenance ----------------------------------------------------------------------------------

    async def analyze(self) -> None:
        """`ANALYZE;` on the whole database: refreshes planner statistics."""
        await self._execute("ANALYZE", "ANALYZE")

    async def vacuum_analyze(self) -> None:
        """`VACUUM ANALYZE;` on the whole database (plain VACUUM: no exclusive locks, unlike VACUUM FULL)."""
        await self._execute("VACUUM ANALYZE", "VACUUM (ANALYZE)")

    async def reindex_database(self, *, concurrently: bool = True) -> None:
        """`REINDEX DATABASE`; CONCURRENTLY by default so writes continue (system catalogs are then skipped)."""
        template = "REINDEX DATABASE CONCURRENTLY {}" if concurrently else "REINDEX DATABASE {}"
        await self._execute("REINDEX DATABASE", sql.SQL(template).format(sql.Identifier(self.info.dbname)))

    # -- indexes --------------------------------------------------------------------------------------

    async def missing_index_candidates(self) -> list[IndexCandidate]:
        """The runbook's pg_stats heuristic for columns that may deserve an index, with three corrections.

        The runbook filters `n_distinct > 100`, but PostgreSQL stores a negative fraction of the row count for
        columns whose distinct count grows with the table (typically the most selective ones), so we compare
        the estimated count instead; `abs(correlation)` because a descending physical order is just as
        index-friendly; and columns already leading an index are not "missing" one.
        """
        rows = await self._fetch(
            "reading pg_stats",
            "SELECT s.schemaname, s.tablename, s.attname, d.estimate, s.correlation FROM pg_stats s"
            " JOIN pg_namespace n ON n.nspname = s.schemaname"
            " JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.tablename"
            " CROSS JOIN LATERAL (SELECT CASE WHEN s.n_distinct < 0 THEN -s.n_distinct * greatest(c.reltuples, 0)"
            "                     ELSE s.n_distinct END::float8 AS estimate) d"
            " WHERE s.schemaname = 'public' AND d.estimate > 100 AND abs(s.correlation) < 0.1"
            " AND NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a"
            "                 ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
            "                 WHERE i.indrelid = c.oid AND a.attname = s.attname)"
            " ORDER BY d.estimate DESC, 1, 2, 3",
        )
        return [IndexCandidate(s, t, a, float(n), None if c is None else float(c)) for s, t, a, n, c in rows]

    async def _index_info(self, conn: psycopg.AsyncConnection[tuple[Any, ...]], schema: str, name: str) -> _IndexInfo | None:
        cursor = await conn.execute(
            "SELECT i.indisvalid AND i.indisready, t.relname,"
            " ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)"
            "       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.ord),"
            " (SELECT p.pid FROM pg_stat_progress_create_index p WHERE p.index_relid = c.oid LIMIT 1)"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " JOIN pg_index i ON i.indexrelid = c.oid JOIN pg_class t ON t.oid = i.indrelid"
            " WHERE c.relname = %s AND n.nspname = %s",
            (name, schema),
        )
        row = await cursor.fetchone()
        if row is None:
            return None
        return _IndexInfo(bool(row[0]), str(row[1]), tuple(row[2]), row[3])

    async def index_state(self, name: str, schema: str = "public") -> IndexState:
        """ABSENT, VALID, or INVALID (a failed or still-running concurrent build)."""
        _check_identifier(name, "name")
        _check_identifier(schema, "schema")
        async with self._connection(f"looking up index {name}") as conn:
            info = await self._index_info(conn, schema, name)
        if info is None:
            return IndexState.ABSENT
        return IndexState.VALID if info.valid else IndexState.INVALID

    async def index_exists(self, name: str, schema: str = "public") -> bool:
        """True only for a usable (VALID) index: an INVALID leftover does not count."""
        return await self.index_state(name, schema) is IndexState.VALID

    async def create_index_concurrently(
        self,
        name: str,
        table: str,
        columns: Sequence[str],
        where: str | None = None,
        schema: str = "public",
    ) -> IndexOutcome:
        """CREATE INDEX CONCURRENTLY IF NOT EXISTS, safe to repeat after a crash.

        A valid index of that name on the same table and columns means done; on anything else, `Conflict`.
        An INVALID index of that name on the same table is the leftover of an interrupted build: it is dropped
        (CONCURRENTLY) and rebuilt. A build still in progress elsewhere is `Unavailable` (retry later).
        """
        _check_identifier(name, "name")
        _check_identifier(table, "table")
        _check_identifier(schema, "schema")
        if not columns:
            raise Invalid("columns: at least one column is required")
        for column in columns:
            _check_identifier(column, "columns")
        predicate = compile_predicate(where, field="where") if where is not None else None
        what = f"creating index {name}"
        async with self._connection(what) as conn:
            info = await self._index_info(conn, schema, name)
            recreated = False
            if info is not None:
                if info.table != table:
                    raise Conflict(f"index {schema}.{name} already exists on table {info.table!r}, not {table!r}")
                if info.valid:
                    if info.columns != tuple(columns):
                        raise Conflict(
                            f"index {schema}.{name} already exists on columns {list(info.columns)}, not {list(columns)}"
                        )
                    return IndexOutcome.ALREADY_PRESENT
                if info.building_pid is not None:
                    raise Unavailable(f"index {schema}.{name} is being built by backend pid {info.building_pid}")
                log.info("dropping INVALID leftover index %s.%s before rebuilding it", schema, name)
                await conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(schema, name)))
                recreated = True
            statement = sql.SQL("CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} ({})").format(
                sql.Identifier(name),
                sql.Identifier(schema, table),
                sql.SQL(", ").join(sql.Identifier(c) for c in columns),
            )
            if predicate is not None:
                statement = sql.SQL("{} WHERE {}").format(statement, predicate)
            await conn.execute(statement)
        return IndexOutcome.RECREATED if recreated else IndexOutcome.CREATED

    # -- connections ----------------------------------------------------------------------------------

    async def idle_in_transaction(self, min_seconds: float = 0.0) -> list[IdleTransaction]:
        """Backends idle inside an open transaction for at least `min_seconds`, longest first (server-wide)."""
        if min_seconds < 0:
            raise Invalid(f"min_seconds: must be >= 0, got {min_seconds}")
        rows = await self._fetch(
            "listing idle-in-transaction backends",
            "SELECT pid, usename, datname, application_name, client_addr::text,"
            " extract(epoch FROM clock_timestamp() - state_change)::float8, query"
            " FROM pg_stat_activity WHERE state IN ('idle in transaction', 'idle in transaction (aborted)')"
            " AND clock_timestamp() - state_change >= make_interval(secs => %s) ORDER BY 6 DESC",
            (min_seconds,),
        )
        return [
            IdleTransaction(int(p), u, d, a or "", addr, float(s), redact_sql_literals(q or ""))
            for p, u, d, a, addr, s, q in rows
        ]

    async def connection_counts(self) -> dict[str, int]:
        """Client backends on the whole server by state ('active', 'idle', 'idle in transaction', ...), own included."""
        rows = await self._fetch(
            "counting connections",
            "SELECT coalesce(state, 'unknown'), count(*) FROM pg_stat_activity"
            " WHERE backend_type = 'client backend' GROUP BY 1",
        )
        return {str(state): int(n) for state, n in rows}

    async def terminate_connections(self, dbname: str) -> int:
        """pg_terminate_backend every client of `dbname` except this call's own backend; returns how many ended."""
        if not dbname:
            raise Invalid("dbname: must not be empty")
        rows = await self._fetch(
            f"terminating connections to {dbname}",
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
            (dbname,),
        )
        return sum(1 for (ended,) in rows if ended)

    # -- assessment -----------------------------------------------------------------------------------

    async def damage_assessment(self, window: timedelta = timedelta(hours=1)) -> DamageAssessment:
        """The runbook's integrity counts: trades created and users updated within `window`."""
        if window <= timedelta(0):
            raise Invalid(f"window: must be positive, got {window}")
        counts: dict[str, int | None] = {}
        missing: list[str] = []
        async with self._connection("assessing damage") as conn:
            for table, column in (("trades", "created_at"), ("users", "updated_at")):
                cursor = await conn.execute("SELECT to_regclass(%s)", (f"public.{table}",))
                found = await cursor.fetchone()
                if found is None or found[0] is None:
                    counts[table] = None
                    missing.append(table)
                    continue
                cursor = await conn.execute(
                    sql.SQL("SELECT count(*) FROM {} WHERE {} > now() - %s").format(
                        sql.Identifier("public", table), sql.Identifier(column)
                    ),
                    (window,),
                )
                row = await cursor.fetchone()
                counts[table] = int(row[0]) if row else 0
        return DamageAssessment(window.total_seconds(), counts["trades"], counts["users"], tuple(missing))

    async def database_size(self) -> int:
        """Size of the connected database in bytes."""
        rows = await self._fetch("reading database size", "SELECT pg_database_size(current_database())")
        return int(rows[0][0])

    async def table_sizes(self, limit: int = 20) -> list[TableSize]:
        """Largest user tables (with indexes and TOAST), biggest first."""
        if not 1 <= limit <= 1000:
            raise Invalid(f"limit: must be between 1 and 1000, got {limit}")
        rows = await self._fetch(
            "reading table sizes",
            "SELECT n.nspname, c.relname, pg_total_relation_size(c.oid) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'm', 'p')"
            " AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'"
            " ORDER BY 3 DESC, 1, 2 LIMIT %s",
            (limit,),
        )
        return [TableSize(str(s), str(t), int(b)) for s, t, b in rows]
