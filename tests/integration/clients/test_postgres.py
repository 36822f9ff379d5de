"""PostgresClient against real servers.

Covers: pg_isready semantics (accepting / rejecting during shutdown / no-response), error translation and password scrubbing,
pg_stat_statements (not installed, installed-but-not-preloaded, and the positive path with literal
redaction on a throwaway server that preloads it), ALTER SYSTEM log_min_duration_statement (throwaway
server only: it is cluster-wide), ANALYZE / VACUUM ANALYZE / REINDEX effects, the runbook's pg_stats
index heuristic, CREATE INDEX CONCURRENTLY idempotency and INVALID-leftover recovery, idle-in-transaction
listing, connection counts, terminate_connections, damage assessment, sizes.

The shared server on 127.0.0.1:5432 is only used through a uniquely named database created and dropped here.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import psycopg
import pytest

from tests.support.secrets import SecretGuard
from tradesense_operator.clients.errors import (
    Conflict,
    ExtensionMissing,
    Forbidden,
    Invalid,
    NotFound,
    Unavailable,
)
from tradesense_operator.clients.postgres import (
    IndexOutcome,
    IndexState,
    PgConnectionInfo,
    PostgresClient,
    ReadyState,
)
from tradesense_sandbox.servers import BinaryMissing, ThrowawayPostgres, free_port

SHARED_HOST, SHARED_PORT = "127.0.0.1", 5432


def _admin(port: int = SHARED_PORT) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(host=SHARED_HOST, port=port, user="postgres", dbname="postgres", autocommit=True)


@pytest.fixture
def pg_dbname() -> Iterator[str]:
    """A fresh database on the shared server, dropped (with its connections) afterwards."""
    name = f"h7_pg_{uuid.uuid4().hex[:12]}"
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg(pg_dbname: str) -> PostgresClient:
    return PostgresClient(
        PgConnectionInfo(host=SHARED_HOST, port=SHARED_PORT, dbname=pg_dbname, user="postgres", sslmode="disable")
    )


@pytest.fixture
async def sql_conn(pg_dbname: str) -> AsyncIterator[psycopg.AsyncConnection[tuple[object, ...]]]:
    """A second, independent connection to the test database for arranging fixtures and checking effects."""
    conn = await psycopg.AsyncConnection.connect(
        host=SHARED_HOST, port=SHARED_PORT, dbname=pg_dbname, user="postgres", autocommit=True
    )
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def throwaway_pg_port() -> Iterator[int]:
    """A private PostgreSQL preloading pg_stat_statements: the shared one does not, and ALTER SYSTEM is cluster-wide."""
    try:
        server = ThrowawayPostgres(pg_stat_statements=True, settings={"pg_stat_statements.track_utility": "on"})
    except BinaryMissing as missing:
        pytest.skip(str(missing))
    with server:
        yield server.port


def _throwaway_client(port: int) -> PostgresClient:
    return PostgresClient(
        PgConnectionInfo(host=SHARED_HOST, port=port, dbname="postgres", user="postgres", sslmode="disable")
    )


# -- readiness and errors ---------------------------------------------------------------------------


async def test_is_ready_reports_accepting_for_the_running_server(pg: PostgresClient) -> None:
    assert await pg.is_ready() is ReadyState.ACCEPTING


async def test_is_ready_reports_no_response_for_a_closed_port_without_raising() -> None:
    client = PostgresClient(PgConnectionInfo(host="127.0.0.1", port=free_port(), connect_timeout=2))
    assert await client.is_ready() is ReadyState.NO_RESPONSE


async def test_is_ready_reports_rejecting_while_the_server_shuts_down() -> None:
    """A 'smart' shutdown waits for open sessions and refuses new ones: pg_isready's 'rejecting connections'."""
    try:
        server = ThrowawayPostgres()
    except BinaryMissing as missing:
        pytest.skip(str(missing))
    with server:
        client = _throwaway_client(server.port)
        session = await psycopg.AsyncConnection.connect(
            host=SHARED_HOST, port=server.port, user="postgres", dbname="postgres"
        )
        try:
            assert await client.is_ready() is ReadyState.ACCEPTING
            assert server.pid is not None
            os.kill(server.pid, signal.SIGTERM)  # smart shutdown
            assert await _eventually_state(client, ReadyState.REJECTING)
        finally:
            await session.close()
        assert await _eventually_state(client, ReadyState.NO_RESPONSE)


async def _eventually_state(client: PostgresClient, expected: ReadyState) -> bool:
    for _ in range(250):
        if await client.is_ready() is expected:
            return True
        await asyncio.sleep(0.02)
    return False


async def test_closed_port_raises_unavailable_without_the_password(secret_guard: SecretGuard) -> None:
    password = secret_guard.plant(prefix="pg-password")
    client = PostgresClient(PgConnectionInfo(host="127.0.0.1", port=free_port(), connect_timeout=2), password)
    with pytest.raises(Unavailable) as caught:
        await client.database_size()
    assert password not in str(caught.value)
    assert password not in repr(client)
    assert "127.0.0.1" in str(caught.value)


async def test_missing_database_raises_not_found() -> None:
    client = PostgresClient(
        PgConnectionInfo(host=SHARED_HOST, port=SHARED_PORT, dbname=f"h7_absent_{uuid.uuid4().hex[:8]}", user="postgres")
    )
    with pytest.raises(NotFound):
        await client.database_size()


async def test_unknown_role_is_forbidden(pg_dbname: str) -> None:
    client = PostgresClient(PgConnectionInfo(host=SHARED_HOST, port=SHARED_PORT, dbname=pg_dbname, user="h7_no_such_role"))
    with pytest.raises(Forbidden, match="h7_no_such_role"):
        await client.database_size()


def test_library_messages_are_scrubbed_of_the_password_and_not_chained() -> None:
    """psycopg can echo a conninfo string (e.g. on a malformed DSN); the raised error must not carry it."""
    password = f"pw-{uuid.uuid4().hex}"
    client = PostgresClient(PgConnectionInfo(host="db.example"), password)
    leaked = psycopg.OperationalError(f"invalid connection option near 'password={password} host=db.example'")
    with pytest.raises(Unavailable) as caught:
        client._raise(leaked, "connecting")
    assert password not in str(caught.value)
    assert "password=***" in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("host", {"host": ""}),
        ("port", {"port": 0}),
        ("sslmode", {"sslmode": "sometimes"}),
        ("connect_timeout", {"connect_timeout": 0}),
    ],
)
def test_connection_info_rejects_bad_fields_by_name(field: str, kwargs: dict[str, object]) -> None:
    values: dict[str, object] = {"host": "127.0.0.1", **kwargs}
    with pytest.raises(Invalid, match=rf"^{field}:"):
        PgConnectionInfo(**values)  # type: ignore[arg-type]


async def test_get_setting_reads_values_and_rejects_unknown_names(pg: PostgresClient) -> None:
    assert (await pg.get_setting("max_connections")).isdigit()
    with pytest.raises(NotFound):
        await pg.get_setting("no_such_setting_h7")


# -- pg_stat_statements -----------------------------------------------------------------------------


async def test_slow_queries_raises_extension_missing_when_not_installed(pg: PostgresClient) -> None:
    with pytest.raises(ExtensionMissing, match=r"not installed.*CREATE EXTENSION pg_stat_statements"):
        await pg.slow_queries()


async def test_slow_queries_raises_extension_missing_when_installed_but_not_preloaded(
    pg: PostgresClient, sql_conn: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    preload = await (await sql_conn.execute("SHOW shared_preload_libraries")).fetchone()
    if preload and "pg_stat_statements" in str(preload[0]):
        pytest.skip("the shared server preloads pg_stat_statements; the not-loaded case cannot be shown here")
    await sql_conn.execute("CREATE EXTENSION pg_stat_statements")
    with pytest.raises(ExtensionMissing, match="shared_preload_libraries"):
        await pg.slow_queries()


async def test_slow_queries_returns_the_slowest_statements_with_literals_redacted(throwaway_pg_port: int) -> None:
    client = _throwaway_client(throwaway_pg_port)
    secret = f"hunter-{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(
        host=SHARED_HOST, port=throwaway_pg_port, user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.execute("SELECT pg_stat_statements_reset()")
        await conn.execute("SELECT pg_sleep(0.06)")
        await conn.execute("DROP ROLE IF EXISTS h7_redact")
        await conn.execute(f"CREATE ROLE h7_redact PASSWORD '{secret}'")  # utility statement: stored verbatim

    slow = await client.slow_queries(min_mean_ms=40, limit=5)
    assert [q.query for q in slow] == ["SELECT pg_sleep($1)"]
    assert slow[0].calls == 1
    assert slow[0].mean_exec_ms >= 40

    everything = await client.slow_queries(min_mean_ms=0, limit=1000)
    assert any("CREATE ROLE h7_redact PASSWORD '***'" in q.query for q in everything)
    assert all(secret not in q.query for q in everything)


async def test_set_log_min_duration_applies_with_reload_and_is_idempotent(throwaway_pg_port: int) -> None:
    client = _throwaway_client(throwaway_pg_port)
    original = await client.set_log_min_duration(-1)  # a known starting point, whatever earlier runs left
    try:
        assert await client.set_log_min_duration(100) == -1
        assert await _eventually_setting(client, "log_min_duration_statement", "100ms")
        assert await client.set_log_min_duration(100) == 100  # already there: no-op, reports current
    finally:
        await client.set_log_min_duration(original)
    with pytest.raises(Invalid, match="log_min_duration_statement"):
        await client.set_log_min_duration(-5)


async def _eventually_setting(client: PostgresClient, name: str, expected: str) -> bool:
    """pg_reload_conf signals the postmaster asynchronously; new backends see the value within moments."""
    for _ in range(100):
        if await client.get_setting(name) == expected:
            return True
        await asyncio.sleep(0.02)
    return False


# -- maintenance and indexes ------------------------------------------------------------------------


async def _make_trades(conn: psycopg.AsyncConnection[tuple[object, ...]], rows: int = 3000) -> None:
    await conn.execute(
        "CREATE TABLE trades (id bigserial PRIMARY KEY, user_id int NOT NULL, entry_date date NOT NULL,"
        " deleted_at timestamptz, created_at timestamptz NOT NULL DEFAULT now())"
    )
    await conn.execute(
        "INSERT INTO trades (user_id, entry_date) SELECT (random() * 100000)::int, date '2024-01-01' + (g %% 300)"
        " FROM generate_series(1, %s) AS g",
        (rows,),
    )


async def test_analyze_and_vacuum_analyze_update_table_statistics(
    pg: PostgresClient, sql_conn: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    await _make_trades(sql_conn)
    await pg.analyze()
    row = await (await sql_conn.execute("SELECT count(*) FROM pg_stats WHERE tablename = 'trades'")).fetchone()
    assert row is not None
    assert int(str(row[0])) > 0
    await pg.vacuum_analyze()
    await sql_conn.execute("SELECT pg_stat_clear_snapshot()")
    row = await (
        await sql_conn.execute("SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'trades'")
    ).fetchone()
    assert row == (True,)


async def test_reindex_database_rebuilds_indexes(
    pg: PostgresClient, sql_conn: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    await _make_trades(sql_conn, rows=100)
    query = "SELECT pg_relation_filenode('trades_pkey')"
    before = await (await sql_conn.execute(query)).fetchone()
    await pg.reindex_database()
    after = await (await sql_conn.execute(query)).fetchone()
    assert before != after  # a rebuilt index gets a new file


async def test_missing_index_candidates_flags_high_cardinality_uncorrelated_columns(
    pg: PostgresClient, sql_conn: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    await _make_trades(sql_conn)
    await pg.analyze()
    candidates = await pg.missing_index_candidates()
    assert ("trades", "user_id") in {(c.table, c.column) for c in candidates}
    assert ("trades", "id") not in {(c.table, c.column) for c in candidates}  # correlated, and already indexed
    await sql_conn.execute("CREATE INDEX trades_user ON trades (user_id)")
    assert ("trades", "user_id") not in {(c.table, c.column) for c in await pg.missing_index_candidates()}


async def test_create_index_concurrently_creates_once_and_then_reports_present(
    pg: PostgresClient, sql_conn: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    await _make_trades(sql_conn, rows=200)
    name = "idx_trades_user_date"
    assert await pg.index_state(name) is IndexState.ABSENT
    outcome = await pg.create_index_concurrently(name, "trades", ["user_id", "entry_date"], where="deleted_at IS NULL")
    assert outcome is IndexOutcome.CREATED
    assert await pg.index_exists(name)
    row = await (await sql_conn.execute("SELECT pg_get_indexdef(%s::regclass)", (name,))).fetchone()
    assert row is not None
    assert str(row[0]).endswith("USING btree (user_id, entry_date) WHERE (deleted_at IS NULL)")

    again = await pg.create_index_concurrently(name, "trades", ["user_id", "entry_date"], where="deleted_at IS NULL")
    assert again is IndexOutcome.ALREADY_PRESENT
    with pytest.raises(Conflict, match="columns"):
        await pg.create_index_concurrently(name, "trades", ["user_id"])


async def test_create_index_concurrently_drops_an_invalid_leftover_and_rebuilds(
    pg: PostgresClient, sql_conn: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    await _make_trades(sql_conn, rows=200)
    await sql_conn.execute("INSERT INTO trades (user_id, entry_date) VALUES (7, '2024-02-02'), (7, '2024-02-02')")
    name = "idx_trades_user_date"
    # a concurrent build that fails half way leaves an INVALID index behind, exactly like a crashed attempt
    with pytest.raises(psycopg.errors.UniqueViolation):
        await sql_conn.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {name} ON trades (user_id, entry_date)")
    assert await pg.index_state(name) is IndexState.INVALID
    assert not await pg.index_exists(name)

    outcome = await pg.create_index_concurrently(name, "trades", ["user_id", "entry_date"], where="deleted_at IS NULL")
    assert outcome is IndexOutcome.RECREATED
    assert await pg.index_state(name) is IndexState.VALID
    row = await (
        await sql_conn.execute("SELECT indisunique FROM pg_index WHERE indexrelid = %s::regclass", (name,))
    ).fetchone()
    assert row == (False,)


async def test_create_index_concurrently_leaves_a_build_in_progress_alone(
    pg: PostgresClient, pg_dbname: str, sql_conn: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    """An INVALID index that another backend is still building is not a leftover: dropping it would be wrong."""
    await _make_trades(sql_conn, rows=200)
    name = "idx_trades_user"
    # an open snapshot makes CREATE INDEX CONCURRENTLY wait (index already in the catalog, INVALID) until it ends
    holder = await psycopg.AsyncConnection.connect(host=SHARED_HOST, port=SHARED_PORT, dbname=pg_dbname, user="postgres")
    try:
        await holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        await holder.execute("SELECT 1")
        builder = asyncio.create_task(sql_conn.execute(f"CREATE INDEX CONCURRENTLY {name} ON trades (user_id)"))
        for _ in range(250):  # the catalog entry is committed before the build starts waiting
            if await pg.index_state(name) is IndexState.INVALID:
                break
            await asyncio.sleep(0.02)
        assert await pg.index_state(name) is IndexState.INVALID
        with pytest.raises(Unavailable, match="being built by backend pid"):
            await pg.create_index_concurrently(name, "trades", ["user_id"])
        await holder.execute("COMMIT")
        await builder
    finally:
        await holder.close()
    assert await pg.index_state(name) is IndexState.VALID
    assert await pg.create_index_concurrently(name, "trades", ["user_id"]) is IndexOutcome.ALREADY_PRESENT


async def test_create_index_concurrently_rejects_unsafe_identifiers_and_predicates(
    pg: PostgresClient, sql_conn: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    await _make_trades(sql_conn, rows=10)
    with pytest.raises(Invalid, match=r"^where:"):
        await pg.create_index_concurrently("idx_x", "trades", ["user_id"], where="1=1; DROP TABLE trades")
    with pytest.raises(Invalid, match=r"^table:"):
        await pg.create_index_concurrently("idx_x", 'trades"; DROP TABLE trades; --', ["user_id"])
    with pytest.raises(Invalid, match=r"^name:"):
        await pg.create_index_concurrently("i" * 64, "trades", ["user_id"])
    with pytest.raises(Conflict, match="on table"):
        await pg.create_index_concurrently("trades_pkey", "users", ["id"])
    row = await (await sql_conn.execute("SELECT to_regclass('public.trades') IS NOT NULL")).fetchone()
    assert row == (True,)


# -- connections ------------------------------------------------------------------------------------


async def test_idle_in_transaction_and_connection_counts_see_a_leaked_transaction(
    pg: PostgresClient, pg_dbname: str
) -> None:
    async with await psycopg.AsyncConnection.connect(
        host=SHARED_HOST, port=SHARED_PORT, dbname=pg_dbname, user="postgres", application_name="h7-leaker"
    ) as leaker:
        await leaker.execute("SELECT 1")  # opens a transaction and leaves it open (autocommit off)
        pid = leaker.info.backend_pid
        idle = await pg.idle_in_transaction(min_seconds=0)
        mine = [t for t in idle if t.pid == pid]
        assert len(mine) == 1
        assert mine[0].database == pg_dbname
        assert mine[0].application_name == "h7-leaker"
        assert mine[0].query == "SELECT 1"
        assert pid not in {t.pid for t in await pg.idle_in_transaction(min_seconds=3600)}
        counts = await pg.connection_counts()
        assert counts["idle in transaction"] >= 1
        assert counts["active"] >= 1  # the counting query itself


async def test_terminate_connections_ends_every_other_client_of_the_database(pg: PostgresClient, pg_dbname: str) -> None:
    victims = [
        await psycopg.AsyncConnection.connect(host=SHARED_HOST, port=SHARED_PORT, dbname=pg_dbname, user="postgres")
        for _ in range(2)
    ]
    try:
        assert await pg.terminate_connections(pg_dbname) == 2
        for victim in victims:
            with pytest.raises(psycopg.OperationalError):
                await victim.execute("SELECT 1")
        assert await pg.database_size() > 0  # the client itself still works afterwards
    finally:
        for victim in victims:
            await victim.close()


# -- assessment -------------------------------------------------------------------------------------


async def test_damage_assessment_counts_recent_rows_and_reports_missing_tables(
    pg: PostgresClient, sql_conn: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    assessment = await pg.damage_assessment()
    assert (assessment.trades_created, assessment.users_updated) == (None, None)
    assert assessment.missing_tables == ("trades", "users")

    await _make_trades(sql_conn, rows=5)
    await sql_conn.execute("UPDATE trades SET created_at = now() - interval '2 hours' WHERE id <= 2")
    await sql_conn.execute("CREATE TABLE users (id int, updated_at timestamptz)")
    await sql_conn.execute("INSERT INTO users VALUES (1, now()), (2, now() - interval '3 hours')")
    assessment = await pg.damage_assessment(timedelta(hours=1))
    assert (assessment.trades_created, assessment.users_updated) == (3, 1)
    assert assessment.missing_tables == ()
    assert assessment.window_seconds == 3600
    wider = await pg.damage_assessment(timedelta(hours=4))
    assert (wider.trades_created, wider.users_updated) == (5, 2)


async def test_database_and_table_sizes(pg: PostgresClient, sql_conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
    await _make_trades(sql_conn, rows=2000)
    await sql_conn.execute("CREATE TABLE tiny (x int)")
    sizes = await pg.table_sizes(limit=10)
    assert [s.table for s in sizes][:2] == ["trades", "tiny"]
    assert sizes[0].total_bytes > sizes[1].total_bytes
    assert await pg.database_size() > sizes[0].total_bytes
