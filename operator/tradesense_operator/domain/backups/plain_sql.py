"""Cutting a plain-format dump (pg_dump's SQL) into SQL text and COPY data, as a stream (pure, no I/O).

Owns recognising pg_dump's `COPY … FROM stdin;` blocks so their rows can be loaded by several sessions
while the rest of the script runs through psql; it must not run anything. A COPY line counts only right
after pg_dump's `-- … Type: TABLE DATA; …` comment, so text that merely looks like one (a line of a
function body) stays SQL. Rows are handed on in blocks of whole lines, without the `\\.` end line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

END_OF_DATA = b"\\.\n"
SESSION_SETTING_PREFIXES = (b"SET ", b"SELECT pg_catalog.set_config(")


class TruncatedDump(ValueError):
    """The SQL ended inside a COPY block."""


@dataclass(frozen=True)
class Piece:
    """Script text to run in order (whole lines; `copy` None), or whole rows of one COPY block, `copy` being
    pg_dump's statement without its `;`."""

    data: bytes
    copy: str | None = None


def _toc_comment(line: bytes) -> bool:
    return line.startswith(b"-- ") and b"; Type: " in line


def _copy_statement(line: bytes) -> str | None:
    if line.startswith(b"COPY ") and line.endswith(b" FROM stdin;\n"):
        return line[:-2].decode("utf-8")
    return None


def split_plain_sql(chunks: Iterable[bytes]) -> Iterator[Piece]:
    """The dump as pieces of script text and COPY rows in script order; any chunking gives the same rows and text."""
    buffer = b""
    statement: str | None = None  # inside a COPY block
    data_entry = False  # the last TOC comment announced TABLE DATA
    for chunk in chunks:
        buffer += chunk
        pos = 0
        text_start = 0
        while True:
            if statement is not None:
                at_start = buffer.startswith(END_OF_DATA, pos)
                end = pos if at_start else buffer.find(b"\n" + END_OF_DATA, pos)
                if end >= 0:
                    stop = end if at_start else end + 1
                    if stop > pos:
                        yield Piece(buffer[pos:stop], statement)
                    pos = text_start = stop + len(END_OF_DATA)
                    statement = None
                    continue
                last = buffer.rfind(b"\n", pos) + 1
                if last > pos:
                    yield Piece(buffer[pos:last], statement)
                    pos = text_start = last
                break
            newline = buffer.find(b"\n", pos)
            if newline < 0:
                break
            line = buffer[pos:newline + 1]
            copy = _copy_statement(line) if data_entry else None
            if copy is not None:
                if pos > text_start:
                    yield Piece(buffer[text_start:pos])
                statement = copy
                data_entry = False
                pos = text_start = newline + 1
                continue
            if _toc_comment(line):
                data_entry = b"; Type: TABLE DATA;" in line
            pos = newline + 1
        if statement is None and pos > text_start:
            yield Piece(buffer[text_start:pos])
            text_start = pos
        buffer = buffer[text_start:] if statement is None else buffer[pos:]
    if statement is not None:
        raise TruncatedDump("the dump ends inside a COPY block")
    if buffer:
        yield Piece(buffer)


def session_settings(text: bytes) -> list[str]:
    """The one-line `SET …;` / `set_config(…)` statements of a script's header, for other sessions to repeat."""
    return [line.decode("utf-8") for line in text.splitlines() if line.startswith(SESSION_SETTING_PREFIXES)]


def psql_restrict_lines(text: bytes) -> bytes:
    """pg_dump's `\\restrict <key>` lines (PostgreSQL 15.14+): a script cut after them must repeat them first,
    or psql rejects the closing `\\unrestrict`."""
    return b"".join(line for line in text.splitlines(keepends=True) if line.startswith(b"\\restrict "))
