"""`pg_restore -l` listings: table data entries found (ambiguous names left to pg_restore), entries commented out."""

from __future__ import annotations

from tradesense_operator.domain.backups.archive_toc import TableData, table_data_entries, without_entries

LISTING = """;
; Archive created at 2026-12-03 09:50:44 UTC
;     Format: DIRECTORY
;
217; 1259 32682 TABLE public trades postgres
3370; 0 32699 TABLE DATA public sessions postgres
3369; 0 32682 TABLE DATA public trades postgres
3371; 0 32700 TABLE DATA public odd name postgres
3377; 0 0 SEQUENCE SET public trades_id_seq postgres
3219; 2606 32693 CONSTRAINT public trades trades_pkey postgres
"""


def test_table_data_entries_with_unambiguous_names() -> None:
    assert table_data_entries(LISTING) == [TableData(3370, "public", "sessions"), TableData(3369, "public", "trades")]
    assert TableData(3369, "public", "trades").data_files() == ("3369.dat.gz", "3369.dat")


def test_without_entries_comments_out_exactly_those() -> None:
    edited = without_entries(LISTING, {3369}).splitlines()
    assert ";3369; 0 32682 TABLE DATA public trades postgres" in edited
    assert "3370; 0 32699 TABLE DATA public sessions postgres" in edited
    assert "217; 1259 32682 TABLE public trades postgres" in edited  # the same table's other entries stay
    assert [line for line in edited if not line.startswith(";")] == [
        line for line in LISTING.splitlines() if not line.startswith(";") and not line.startswith("3369;")]
