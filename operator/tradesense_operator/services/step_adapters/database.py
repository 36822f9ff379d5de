"""PostgreSQL actions: the runbook's `pg_isready` and `psql` commands through `clients.postgres`.

Reads (slow queries, index candidates, idle transactions, damage counts, sizes) report evidence and
never fail an incident for what they find; writes are idempotent by nature (ANALYZE, a setting equal to
its target) or checked first (an index that already exists and is valid is ALREADY_DONE).
"""

from __future__ import annotations

from datetime import timedelta

from tradesense_operator.api.v1alpha1.incident import StepAction
from tradesense_operator.clients.errors import ExtensionMissing
from tradesense_operator.clients.postgres import IndexOutcome, IndexState, ReadyState
from tradesense_operator.services.step_adapters.base import Outcome, StepContext, StepFailed, StepResult
from tradesense_operator.services.step_adapters.connections import database_label, postgres_client
from tradesense_operator.services.step_adapters.step_inputs import (
    param_bool,
    param_float,
    param_int,
    param_str,
    require_int,
    require_str,
)

_TOP = 5
_QUERY_CHARS = 200


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


class PgIsReady:
    """`pg_isready`: accepting, rejecting (starting/stopping) or no response; evidence unless `require`."""

    name = StepAction.PG_ISREADY
    destructive = False

    async def describe(self, ctx: StepContext) -> str:
        return f"pg_isready against {database_label(ctx)} (read-only)"

    async def run(self, ctx: StepContext) -> StepResult:
        state = await (await postgres_client(ctx)).is_ready()
        message = f"{database_label(ctx)}: {state.value}"
        if state is not ReadyState.ACCEPTING and param_bool(ctx.step, "require"):
            raise StepFailed(f"PostgreSQL is not accepting connections ({message})")
        return StepResult(Outcome.DONE, message, {"pgIsReady": state.value})


class PgSlowQueries:
    """The runbook's pg_stat_statements query; a clear skip when the extension is absent."""

    name = StepAction.PG_SLOW_QUERIES
    destructive = False

    async def describe(self, ctx: StepContext) -> str:
        threshold = param_float(ctx.step, "minMeanMs", 100.0)
        return f"list the slowest statements with mean > {threshold:g} ms from pg_stat_statements (read-only)"

    async def run(self, ctx: StepContext) -> StepResult:
        threshold = param_float(ctx.step, "minMeanMs", 100.0)
        limit = param_int(ctx.step, "limit", 20) or 20
        try:
            rows = await (await postgres_client(ctx)).slow_queries(min_mean_ms=threshold, limit=limit)
        except ExtensionMissing as exc:
            return StepResult(Outcome.SKIPPED, f"slow queries not available: {exc}")
        evidence = {
            f"q{i + 1}": f"{q.mean_exec_ms:.1f} ms × {q.calls}: {q.query[:_QUERY_CHARS]}" for i, q in enumerate(rows[:_TOP])
        }
        if not rows:
            return StepResult(Outcome.DONE, f"no statement has a mean above {threshold:g} ms", evidence)
        return StepResult(
            Outcome.DONE,
            f"{len(rows)} statements with mean > {threshold:g} ms; slowest {rows[0].mean_exec_ms:.1f} ms mean",
            evidence,
        )


class PgSetLogMinDuration:
    """`ALTER SYSTEM SET log_min_duration_statement = N; SELECT pg_reload_conf()`."""

    name = StepAction.PG_SET_LOG_MIN_DURATION
    destructive = False

    async def describe(self, ctx: StepContext) -> str:
        wanted = require_int(ctx.step, "ms")
        current = await (await postgres_client(ctx)).get_setting("log_min_duration_statement")
        return f"log_min_duration_statement {current} → {wanted}ms (ALTER SYSTEM + reload)"

    async def run(self, ctx: StepContext) -> StepResult:
        wanted = require_int(ctx.step, "ms")
        previous = await (await postgres_client(ctx)).set_log_min_duration(wanted)
        if "previousMs" not in ctx.checkpoint:
            await ctx.save_checkpoint({"previousMs": str(previous)})
        before = ctx.checkpoint.get("previousMs", str(previous))
        evidence = {"previousMs": before, "ms": str(wanted)}
        if previous == wanted:
            return StepResult(Outcome.ALREADY_DONE, f"log_min_duration_statement is already {wanted} ms", evidence)
        return StepResult(Outcome.DONE, f"log_min_duration_statement {before} → {wanted} ms (reloaded)", evidence)


class PgAnalyze:
    """`ANALYZE`: refresh planner statistics (repeating it is harmless)."""

    name = StepAction.PG_ANALYZE
    destructive = False

    async def describe(self, ctx: StepContext) -> str:
        return f"ANALYZE every table of {database_label(ctx)} (planner statistics only)"

    async def run(self, ctx: StepContext) -> StepResult:
        await (await postgres_client(ctx)).analyze()
        return StepResult(Outcome.DONE, f"ANALYZE done on {database_label(ctx)}")


class PgMissingIndexes:
    """The runbook's pg_stats heuristic: many distinct values, poor correlation."""

    name = StepAction.PG_MISSING_INDEXES
    destructive = False

    async def describe(self, ctx: StepContext) -> str:
        return f"list index candidates of {database_label(ctx)} from pg_stats (n_distinct > 100, correlation < 0.1)"

    async def run(self, ctx: StepContext) -> StepResult:
        found = await (await postgres_client(ctx)).missing_index_candidates()
        evidence = {
            f"c{i + 1}": f"{c.schema}.{c.table}.{c.column} (distinct≈{c.distinct_estimate:.0f}, "
                         f"correlation {'n/a' if c.correlation is None else f'{c.correlation:.2f}'})"
            for i, c in enumerate(found[:_TOP])
        }
        if not found:
            return StepResult(Outcome.DONE, "no index candidates (statistics may be missing: run ANALYZE first)")
        names = ", ".join(f"{c.table}.{c.column}" for c in found[:_TOP])
        return StepResult(Outcome.DONE, f"{len(found)} index candidates: {names}", evidence)


def _index_request(ctx: StepContext) -> tuple[str, str, list[str], str | None]:
    name, table = require_str(ctx.step, "name"), require_str(ctx.step, "table")
    columns = [c.strip() for c in require_str(ctx.step, "columns").split(",") if c.strip()]
    return name, table, columns, param_str(ctx.step, "where")


class PgCreateIndex:
    """`CREATE INDEX CONCURRENTLY` (destructive: waits for approval); a valid index of that name is done."""

    name = StepAction.PG_CREATE_INDEX
    destructive = True

    async def describe(self, ctx: StepContext) -> str:
        name, table, columns, where = _index_request(ctx)
        state = await (await postgres_client(ctx)).index_state(name)
        statement = f"CREATE INDEX CONCURRENTLY {name} ON {table}({', '.join(columns)})"
        if where:
            statement += f" WHERE {where}"
        if state is IndexState.VALID:
            return f"index {name} already exists (no change)"
        leftover = " (dropping an INVALID leftover first)" if state is IndexState.INVALID else ""
        return statement + leftover

    async def run(self, ctx: StepContext) -> StepResult:
        name, table, columns, where = _index_request(ctx)
        outcome = await (await postgres_client(ctx)).create_index_concurrently(name, table, columns, where)
        evidence = {"index": name, "table": table, "columns": ",".join(columns)}
        if outcome is IndexOutcome.ALREADY_PRESENT:
            return StepResult(Outcome.ALREADY_DONE, f"index {name} already exists and is valid", evidence)
        extra = " (an INVALID leftover of an interrupted build was dropped first)" \
            if outcome is IndexOutcome.RECREATED else ""
        return StepResult(Outcome.DONE, f"created index {name} on {table}({', '.join(columns)}) concurrently{extra}",
                          evidence)


class PgIdleInTransaction:
    """Connection-leak report: sessions idle in a transaction, and connections by state."""

    name = StepAction.PG_IDLE_IN_TRANSACTION
    destructive = False

    async def describe(self, ctx: StepContext) -> str:
        counts = await (await postgres_client(ctx)).connection_counts()
        return (f"report sessions idle in transaction and connections by state (read-only; now "
                f"{counts.get('idle in transaction', 0)} idle in transaction of {sum(counts.values())})")

    async def run(self, ctx: StepContext) -> StepResult:
        client = await postgres_client(ctx)
        idle = await client.idle_in_transaction(param_float(ctx.step, "minSeconds", 0.0))
        counts = await client.connection_counts()
        evidence = {f"state.{state}": str(n) for state, n in sorted(counts.items())}
        for i, tx in enumerate(idle[:_TOP]):
            evidence[f"idle{i + 1}"] = (f"pid {tx.pid} {tx.application_name or '?'} {tx.idle_seconds:.0f}s: "
                                       f"{tx.query[:_QUERY_CHARS]}")
        total = sum(counts.values())
        return StepResult(
            Outcome.DONE,
            f"{len(idle)} sessions idle in transaction; {total} client connections "
            f"({', '.join(f'{n} {s}' for s, n in sorted(counts.items()))})",
            evidence,
        )


class PgDamageAssessment:
    """`SELECT COUNT(*) FROM trades WHERE created_at > NOW() - INTERVAL '1 hour'` and the same for users."""

    name = StepAction.PG_DAMAGE_ASSESSMENT
    destructive = False

    async def describe(self, ctx: StepContext) -> str:
        window = param_int(ctx.step, "windowSeconds", 3600) or 3600
        return f"count trades created and users updated in the last {window}s (read-only)"

    async def run(self, ctx: StepContext) -> StepResult:
        window = param_int(ctx.step, "windowSeconds", 3600) or 3600
        report = await (await postgres_client(ctx)).damage_assessment(timedelta(seconds=window))
        evidence = {
            "windowSeconds": str(window),
            "tradesCreated": "missing table" if report.trades_created is None else str(report.trades_created),
            "usersUpdated": "missing table" if report.users_updated is None else str(report.users_updated),
        }
        return StepResult(
            Outcome.DONE,
            f"last {window}s: {evidence['tradesCreated']} trades created, {evidence['usersUpdated']} users updated",
            evidence,
        )


class PgDiskUsage:
    """Disk-space alert evidence: database size and the largest tables."""

    name = StepAction.PG_DISK_USAGE
    destructive = False

    async def describe(self, ctx: StepContext) -> str:
        return f"measure {database_label(ctx)} size and its largest tables (read-only)"

    async def run(self, ctx: StepContext) -> StepResult:
        client = await postgres_client(ctx)
        size = await client.database_size()
        tables = await client.table_sizes(param_int(ctx.step, "limit", 10) or 10)
        evidence = {"databaseSize": _mib(size)}
        evidence.update({f"t{i + 1}": f"{t.schema}.{t.table} {_mib(t.total_bytes)}" for i, t in enumerate(tables[:_TOP])})
        biggest = f"; largest {tables[0].table} ({_mib(tables[0].total_bytes)})" if tables else ""
        return StepResult(Outcome.DONE, f"database {_mib(size)}{biggest}", evidence)


class PgTerminateConnections:
    """pg_terminate_backend for every client of a database (destructive: waits for approval)."""

    name = StepAction.PG_TERMINATE_CONNECTIONS
    destructive = True

    def _database(self, ctx: StepContext) -> str:
        default = ctx.spec.target.database.database if ctx.spec.target.database else "tradesense"
        return param_str(ctx.step, "database", default) or default

    async def describe(self, ctx: StepContext) -> str:
        counts = await (await postgres_client(ctx)).connection_counts()
        return (f"terminate every client connection to database {self._database(ctx)} "
                f"({sum(counts.values())} client connections on the server now)")

    async def run(self, ctx: StepContext) -> StepResult:
        if "terminated" in ctx.checkpoint:
            return StepResult(Outcome.ALREADY_DONE, "connections were already terminated by this step",
                              {"terminated": ctx.checkpoint["terminated"]})
        database = self._database(ctx)
        ended = await (await postgres_client(ctx)).terminate_connections(database)
        await ctx.save_checkpoint({"terminated": str(ended)})
        return StepResult(Outcome.DONE, f"terminated {ended} connections to database {database}", {"terminated": str(ended)})
