"""The binary format's table of contents: how tables are cut into page ranges, and its JSON."""

from __future__ import annotations

import itertools

import pytest

from tradesense_operator.domain.backups.binary_toc import (
    MAX_CHUNK_PAGES,
    SPLIT_MIN_PAGES,
    DataFile,
    TableOfContents,
    TocError,
    page_ranges,
    plan,
)


def test_small_tables_and_single_workers_are_one_chunk() -> None:
    assert page_ranges(SPLIT_MIN_PAGES - 1, 4) == [(0, None)]
    assert page_ranges(10 * MAX_CHUNK_PAGES, 1) == [(0, None)]


def test_big_tables_are_cut_into_a_multiple_of_workers_covering_every_page() -> None:
    ranges = page_ranges(SPLIT_MIN_PAGES * 3, 2)
    assert ranges == [(0, SPLIT_MIN_PAGES * 3 // 2), (SPLIT_MIN_PAGES * 3 // 2, None)]
    huge = page_ranges(5 * MAX_CHUNK_PAGES + 1, 2)
    assert len(huge) == 6  # chunks of at most MAX_CHUNK_PAGES, a multiple of 2
    assert huge[0][0] == 0
    assert huge[-1][1] is None  # the last chunk also takes pages added after the plan
    assert all(high == low for (_, high), (low, _) in itertools.pairwise(huge))
    assert all(high - low <= MAX_CHUNK_PAGES for low, high in huge[:-1] if high is not None)


def test_plan_puts_the_biggest_chunks_first_and_names_files_in_that_order() -> None:
    toc = plan([("public", "small", ("id",), 3), ("public", "big", ("id", "x"), SPLIT_MIN_PAGES * 4)],
               encoding="UTF8", workers=2)
    assert [(f.name, f.table) for f in toc.files] == [("0.copy.zst", "big"), ("1.copy.zst", "big"),
                                                      ("2.copy.zst", "small")]
    assert toc.files[0].where() == f"ctid >= '(0,0)'::tid AND ctid < '({SPLIT_MIN_PAGES * 2},0)'::tid"
    assert toc.files[1].where() == f"ctid >= '({SPLIT_MIN_PAGES * 2},0)'::tid"
    assert toc.files[2].where() == ""


def test_toc_round_trips_and_rejects_what_it_cannot_restore() -> None:
    toc = TableOfContents("LATIN1", (DataFile("0.copy.zst", "s p", 'we"ird', ("a", "b c"), 0, 7),
                                     DataFile("1.copy.zst", "s p", 'we"ird', ("a", "b c"), 7, None)),
                          large_objects=False)
    assert TableOfContents.from_json(toc.to_json()) == toc
    with pytest.raises(TocError, match="version"):
        TableOfContents.from_json('{"version": 99, "encoding": "UTF8", "files": []}')
    with pytest.raises(TocError, match="unreadable"):
        TableOfContents.from_json('{"version": 1, "files": []}')
    with pytest.raises(TocError, match="unreadable"):
        TableOfContents.from_json("not json")
