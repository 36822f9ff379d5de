"""The runbook schema and the deterministic data generator, on the shared PostgreSQL.

Covers: the `pg_database` fixture's contents (tables, counts, the test user, referential integrity,
identity sequences usable afterwards), same seed → same fingerprint and different seed → different,
fingerprints noticing a deleted or changed row, refusal to populate non-empty tables,
the runbook's index statement and the runbook's integrity queries, and parameter validation.
"""

from __future__ import annotations

import pytest

from tradesense_sandbox.app.auth import verify_password
from tradesense_sandbox.schema import (
    GENERATED_USER_PASSWORD,
    RUNBOOK_INDEX_SQL,
    TEST_USER_EMAIL,
    TEST_USER_PASSWORD,
    fingerprint,
    load_schema,
    populate,
    trades_for_size,
)


def test_pg_database_has_the_runbook_tables_with_small_consistent_data(pg_database):
    assert pg_database.populated is not None
    with pg_database.connect() as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert tables == {"users", "trades", "sessions"}
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (20,)
        assert conn.execute("SELECT count(*) FROM trades").fetchone() == (200,)
        deleted = conn.execute("SELECT count(*) FROM trades WHERE deleted_at IS NOT NULL").fetchone()
        assert deleted == (pg_database.populated.deleted_trades,)
        orphans = conn.execute("SELECT count(*) FROM trades t LEFT JOIN users u ON u.id = t.user_id WHERE u.id IS NULL")
        assert orphans.fetchone() == (0,)
        test_user = conn.execute("SELECT id, password_hash FROM users WHERE email = %s", (TEST_USER_EMAIL,)).fetchone()
        assert test_user is not None
        assert test_user[0] == 1
        assert verify_password(TEST_USER_PASSWORD, test_user[1])
        other = conn.execute("SELECT password_hash FROM users WHERE id = 2").fetchone()
        assert other is not None
        assert verify_password(GENERATED_USER_PASSWORD, other[0])
        # identity sequences continue after the generated ids
        new_id = conn.execute(
            "INSERT INTO trades (user_id, symbol, side, quantity, price, entry_date) "
            "VALUES (1, 'AAPL', 'buy', 1, 1, now()) RETURNING id"
        ).fetchone()
        assert new_id == (201,)


def test_same_seed_gives_identical_data_and_another_seed_does_not(pg_database_factory):
    first = pg_database_factory(seed=7)
    second = pg_database_factory(seed=7)
    third = pg_database_factory(seed=8)
    with first.connect() as a, second.connect() as b, third.connect() as c:
        assert fingerprint(a) == fingerprint(b)
        assert fingerprint(a)["trades"] != fingerprint(c)["trades"]
        assert fingerprint(a)["trades"].rows == fingerprint(c)["trades"].rows


def test_fingerprint_notices_a_deleted_and_a_changed_row(pg_database):
    with pg_database.connect() as conn:
        before = fingerprint(conn)
        conn.execute("UPDATE trades SET price = price + 1 WHERE id = 5")
        changed = fingerprint(conn)
        conn.execute("DELETE FROM trades WHERE id = 6")
        deleted = fingerprint(conn)
    assert changed["trades"].rows == before["trades"].rows
    assert changed["trades"].checksum != before["trades"].checksum
    assert changed["users"] == before["users"]
    assert deleted["trades"].rows == before["trades"].rows - 1


def test_populate_refuses_tables_that_already_hold_rows(pg_database):
    with pg_database.connect(autocommit=False) as conn, pytest.raises(ValueError, match="empty users and trades"):
        populate(conn, users=2, trades=2)


def test_runbook_index_and_integrity_queries_run_against_the_schema(pg_database):
    with pg_database.connect() as conn:
        conn.execute(RUNBOOK_INDEX_SQL)
        index = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'idx_trades_user_date'").fetchone()
        assert index is not None
        assert "WHERE (deleted_at IS NULL)" in index[0]
        # The runbook's "Assess damage" queries: generated data lies in the past, so nothing is recent.
        assert conn.execute("SELECT COUNT(*) FROM trades WHERE created_at > NOW() - INTERVAL '1 hour'").fetchone() == (0,)
        assert conn.execute("SELECT COUNT(*) FROM users WHERE updated_at > NOW() - INTERVAL '1 hour'").fetchone() == (0,)


def test_load_schema_is_idempotent(pg_database):
    with pg_database.connect(autocommit=False) as conn:
        load_schema(conn)
        assert conn.execute("SELECT count(*) FROM trades").fetchone() == (200,)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"users": 0}, "users"), ({"trades": -1}, "trades"), ({"deleted_fraction": 1.5}, "deleted_fraction")],
)
def test_populate_validates_its_sizes_naming_the_parameter(pg_empty_database, kwargs, field):
    with pg_empty_database.connect(autocommit=False) as conn, pytest.raises(ValueError, match=field):
        populate(conn, **kwargs)


def test_trades_for_size_matches_the_measured_size_of_generated_trades(pg_database_factory):
    db = pg_database_factory(users=10, trades=trades_for_size(3))
    with db.connect() as conn:
        row = conn.execute("SELECT pg_total_relation_size('trades')").fetchone()
    assert row is not None
    assert 0.75 * 3 * 2**20 <= row[0] <= 1.25 * 3 * 2**20
    with pytest.raises(ValueError, match="megabytes"):
        trades_for_size(0)
