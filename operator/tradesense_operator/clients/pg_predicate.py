"""A deliberately tiny grammar for partial-index predicates, compiled to safely composed SQL.

Why not accept raw SQL: the predicate comes from an incident's parameters, and a partial index's WHERE
clause is executed with the operator's database privileges. Instead of trusting text, we parse the few
shapes a partial index on this schema needs (the runbook's is `deleted_at IS NULL`) and rebuild them
with `psycopg.sql.Identifier`/`Literal`, so nothing the user types is ever spliced into SQL verbatim.

Grammar (keywords case-insensitive, identifiers lower-case like unquoted PostgreSQL names)::

    predicate := term ( AND term )*
    term      := ident IS [NOT] NULL | ident op literal
    op        := = | <> | != | < | <= | > | >=
    literal   := integer | decimal | 'string' (with '' escapes) | TRUE | FALSE
"""

from __future__ import annotations

import re
from decimal import Decimal

from psycopg import sql

from tradesense_operator.clients.errors import Invalid

IDENTIFIER = re.compile(r"[a-z_][a-z0-9_$]{0,62}")
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^']|'')*')
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<op><>|!=|<=|>=|=|<|>)
      | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
    )""",
    re.VERBOSE,
)
_OPERATORS = {"=": "=", "<>": "<>", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def _tokenize(text: str, field: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    stripped = text.rstrip()
    while pos < len(stripped):
        match = _TOKEN.match(stripped, pos)
        if match is None or match.end() == pos:
            raise Invalid(f"{field}: cannot parse predicate near {stripped[pos : pos + 20]!r}")
        kind = match.lastgroup or ""  # one named alternative always matched
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


def _identifier(value: str, field: str) -> sql.Identifier:
    if not IDENTIFIER.fullmatch(value):
        raise Invalid(f"{field}: {value!r} is not a lower-case column name")
    return sql.Identifier(value)


def _literal(kind: str, value: str) -> sql.Composable:
    if kind == "string":
        return sql.Literal(value[1:-1].replace("''", "'"))
    if kind == "number":
        return sql.Literal(Decimal(value) if "." in value else int(value))
    return sql.SQL("TRUE") if value.upper() == "TRUE" else sql.SQL("FALSE")


def compile_predicate(text: str, *, field: str = "where") -> sql.Composed:
    """Parse `text` with the grammar above and return composed SQL; raise `Invalid` naming `field` otherwise."""
    tokens = _tokenize(text, field)
    if not tokens:
        raise Invalid(f"{field}: predicate is empty")
    terms: list[sql.Composable] = []
    i = 0
    while True:
        if i >= len(tokens) or tokens[i][0] != "word":
            raise Invalid(f"{field}: expected a column name at term {len(terms) + 1}")
        column = _identifier(tokens[i][1], field)
        rest = [(kind, value.upper() if kind == "word" else value) for kind, value in tokens[i + 1 : i + 4]]
        if rest[:3] == [("word", "IS"), ("word", "NOT"), ("word", "NULL")]:
            terms.append(sql.SQL("{} IS NOT NULL").format(column))
            i += 4
        elif rest[:2] == [("word", "IS"), ("word", "NULL")]:
            terms.append(sql.SQL("{} IS NULL").format(column))
            i += 3
        elif (
            len(rest) >= 2
            and rest[0][0] == "op"
            and (rest[1][0] in ("string", "number") or rest[1] in (("word", "TRUE"), ("word", "FALSE")))
        ):
            operand_kind, operand = tokens[i + 2]
            terms.append(
                sql.SQL("{} {} {}").format(column, sql.SQL(_OPERATORS[rest[0][1]]), _literal(operand_kind, operand))
            )
            i += 3
        else:
            raise Invalid(f"{field}: term {len(terms) + 1} must be 'column IS [NOT] NULL' or 'column <op> literal'")
        if i == len(tokens):
            return sql.SQL(" AND ").join(terms)
        if tokens[i][0] != "word" or tokens[i][1].upper() != "AND":
            raise Invalid(f"{field}: terms must be joined with AND, found {tokens[i][1]!r}")
        i += 1
