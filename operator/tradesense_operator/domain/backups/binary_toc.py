"""The `binary` format's table of contents: which file holds which rows, and how a table is cut into files.

A binary backup is a tree: `schema.dump` (pg_dump's custom archive without table data: tables, indexes,
constraints), `sequences.sql` (every sequence's value in the snapshot: pg_dump omits those of sequences
owned by tables whose data it leaves out), one zstd-compressed binary-COPY stream per table chunk
(`<n>.copy.zst`) and `toc.json`, this module's encoding of what each data file is. Big tables are cut into chunks of
physical pages (`ctid` ranges, one snapshot for all), so several sessions dump and load one table at once.
Owns the layout and the cutting; it must not do I/O or run tools (services/backups/binary_format does).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

TOC_NAME = "toc.json"
SCHEMA_NAME = "schema.dump"
SEQUENCES_NAME = "sequences.sql"
TOC_VERSION = 1
PAGE_BYTES = 8192
SPLIT_MIN_PAGES = (8 << 20) // PAGE_BYTES
"""A table smaller than 8 MiB on disk is one file: a second session has nothing to gain on it."""
MAX_CHUNK_PAGES = (256 << 20) // PAGE_BYTES
"""At most 256 MiB of table per file, so the chunks of a huge table keep every session busy to the end."""
BINARY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
BINARY_TRAILER = b"\xff\xff"
COPY_SUFFIX = ".copy.zst"


class TocError(ValueError):
    """toc.json is not a table of contents this version can restore."""


@dataclass(frozen=True)
class DataFile:
    """One binary-COPY stream: rows of `schema.table` whose ctid page is in [first_page, end_page)."""

    name: str
    schema: str
    table: str
    columns: tuple[str, ...]
    first_page: int
    end_page: int | None
    """None: to the end of the table (the last chunk also takes pages added after the plan)."""

    def where(self) -> str:
        """The ctid condition selecting this chunk's rows (empty when it is the whole table)."""
        if self.first_page == 0 and self.end_page is None:
            return ""
        low = f"ctid >= '({self.first_page},0)'::tid"
        return low if self.end_page is None else f"{low} AND ctid < '({self.end_page},0)'::tid"


@dataclass(frozen=True)
class TableOfContents:
    """Every data file of a binary backup and the client encoding its text values are in."""

    encoding: str
    files: tuple[DataFile, ...]
    large_objects: bool = True
    """Whether schema.dump holds large objects (its data section then has to be restored)."""

    def to_json(self) -> str:
        """Stable JSON (stored as toc.json, checksummed in the manifest like every file)."""
        return json.dumps({"version": TOC_VERSION, "encoding": self.encoding, "largeObjects": self.large_objects,
                           "files": [
            {"name": f.name, "schema": f.schema, "table": f.table, "columns": list(f.columns),
             "firstPage": f.first_page, "endPage": f.end_page} for f in self.files]}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> TableOfContents:
        """Parse toc.json; TocError when it is not one."""
        try:
            doc: dict[str, Any] = json.loads(text)
            if doc.get("version") != TOC_VERSION:
                raise TocError(f"toc.json version {doc.get('version')!r}, expected {TOC_VERSION}")
            files = tuple(
                DataFile(str(f["name"]), str(f["schema"]), str(f["table"]), tuple(str(c) for c in f["columns"]),
                         int(f["firstPage"]), None if f["endPage"] is None else int(f["endPage"]))
                for f in doc["files"])
            return cls(str(doc["encoding"]), files, bool(doc.get("largeObjects", True)))
        except (ValueError, KeyError, TypeError) as exc:
            if isinstance(exc, TocError):
                raise
            raise TocError(f"toc.json is unreadable: {exc}") from exc


def page_ranges(pages: int, workers: int) -> list[tuple[int, int | None]]:
    """Cut a table of `pages` pages into chunks: one below SPLIT_MIN_PAGES, else a multiple of `workers` chunks.

    Equal ranges, each at most MAX_CHUNK_PAGES; the last one is open-ended.
    """
    if pages < SPLIT_MIN_PAGES or workers <= 1:
        return [(0, None)]
    count = workers * math.ceil(pages / (workers * MAX_CHUNK_PAGES))
    bounds = [pages * i // count for i in range(count)]
    return [(low, bounds[i + 1] if i + 1 < count else None) for i, low in enumerate(bounds)]


def plan(tables: list[tuple[str, str, tuple[str, ...], int]], *, encoding: str, workers: int,
         large_objects: bool = True) -> TableOfContents:
    """Data files for (schema, table, columns, pages) rows, the biggest chunks first (so they start first)."""
    chunks = [(schema, table, columns, low, high, (high if high is not None else pages) - low)
              for schema, table, columns, pages in tables for low, high in page_ranges(pages, workers)]
    chunks.sort(key=lambda c: -c[5])
    files = tuple(DataFile(f"{number}{COPY_SUFFIX}", schema, table, columns, low, high)
                  for number, (schema, table, columns, low, high, _) in enumerate(chunks))
    return TableOfContents(encoding, files, large_objects)
