"""Cutting pg_dump's plain SQL into script text and COPY rows: any chunking gives the same pieces; look-alikes stay SQL."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradesense_operator.domain.backups.plain_sql import (
    Piece,
    TruncatedDump,
    psql_restrict_lines,
    session_settings,
    split_plain_sql,
)

DUMP = (
    b"--\n-- PostgreSQL database dump\n--\n\n\\restrict abc123\n\n"
    b"SET client_encoding = 'UTF8';\nSELECT pg_catalog.set_config('search_path', '', false);\n"
    b"--\n-- Name: f; Type: FUNCTION; Schema: public; Owner: postgres\n--\n\n"
    b"CREATE FUNCTION public.f() RETURNS void AS $$\nCOPY public.t (a) FROM stdin;\n$$ LANGUAGE sql;\n\n"
    b"--\n-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: postgres\n--\n\n"
    b"COPY public.t (a, b) FROM stdin;\n1\tx\n2\t\\\\.not the end\n3\t\\N\n\\.\n\n"
    b"--\n-- Data for Name: empty; Type: TABLE DATA; Schema: public; Owner: postgres\n--\n\n"
    b"COPY public.empty (a) FROM stdin;\n\\.\n\n"
    b"SELECT pg_catalog.setval('public.t_a_seq', 3, true);\n"
    b"ALTER TABLE ONLY public.t ADD CONSTRAINT t_pkey PRIMARY KEY (a);\n\n\\unrestrict abc123\n"
    b"-- PostgreSQL database dump complete\n"
)


def merged(pieces: list[Piece]) -> list[tuple[str, bytes]]:
    """Adjacent pieces of one kind (and one COPY statement) joined: what a consumer sees."""
    out: list[tuple[str, bytes]] = []
    for piece in pieces:
        key = piece.copy or ""
        data = piece.data
        if out and out[-1][0] == key:
            out[-1] = (key, out[-1][1] + data)
        else:
            out.append((key, data))
    return out


EXPECTED = [
    ("", DUMP[: DUMP.index(b"COPY public.t (a, b)")]),
    ("COPY public.t (a, b) FROM stdin", b"1\tx\n2\t\\\\.not the end\n3\t\\N\n"),
    ("", DUMP[DUMP.index(b"\\.\n\n--") + 3: DUMP.index(b"COPY public.empty")]),
    ("", DUMP[DUMP.index(b"\\.\n\nSELECT") + 3:]),
]


def test_copy_blocks_only_after_a_table_data_comment() -> None:
    assert merged(list(split_plain_sql([DUMP]))) == [EXPECTED[0], EXPECTED[1], (
        "", EXPECTED[2][1] + EXPECTED[3][1])]


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=len(DUMP)), max_size=12))
def test_any_chunking_gives_the_same_pieces(cuts: list[int]) -> None:
    points = sorted({*cuts, 0, len(DUMP)})
    chunks = [DUMP[a:b] for a, b in itertools.pairwise(points)]
    assert merged(list(split_plain_sql(chunks))) == merged(list(split_plain_sql([DUMP])))


def test_header_settings_and_restrict_key_for_other_sessions() -> None:
    head = EXPECTED[0][1]
    assert session_settings(head) == ["SET client_encoding = 'UTF8';",
                                      "SELECT pg_catalog.set_config('search_path', '', false);"]
    assert psql_restrict_lines(head) == b"\\restrict abc123\n"


def test_a_dump_ending_inside_copy_is_refused() -> None:
    cut = DUMP[: DUMP.index(b"3\t\\N")]
    with pytest.raises(TruncatedDump, match="inside a COPY block"):
        list(split_plain_sql([cut]))
