"""Partial-index predicate grammar: accepted shapes compile to quoted SQL, anything else is `Invalid` naming the field."""

from __future__ import annotations

import pytest

from tradesense_operator.clients.errors import Invalid
from tradesense_operator.clients.pg_predicate import compile_predicate


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("deleted_at IS NULL", '"deleted_at" IS NULL'),
        ("deleted_at is not null", '"deleted_at" IS NOT NULL'),
        ("status = 'o''pen'", "\"status\" = 'o''pen'"),
        ("qty >= 10 AND qty != 20", '"qty" >= 10 AND "qty" <> 20'),
        ("active = true and deleted_at IS NULL", '"active" = TRUE AND "deleted_at" IS NULL'),
    ],
)
def test_accepted_predicates_compile_to_quoted_sql(text: str, expected: str) -> None:
    assert " ".join(compile_predicate(text).as_string(None).split()) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1=1; DROP TABLE trades",
        "deleted_at IS NULL OR TRUE",
        "deleted_at IS NULL AND",
        "Deleted_At IS NULL",
        "status = other_column",
        "lower(status) = 'x'",
        "status = 'unterminated",
        "deleted_at IS NULL -- comment",
    ],
)
def test_everything_else_is_invalid_and_names_the_field(text: str) -> None:
    with pytest.raises(Invalid, match=r"^idx_where:"):
        compile_predicate(text, field="idx_where")
