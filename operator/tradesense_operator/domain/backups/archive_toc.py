"""Reading and editing `pg_restore -l` listings of a directory archive (pure text, no I/O).

Owns which TOC entries are table data and how to leave some out of a `pg_restore -L` run; it must not
run tools. A listing line is `<dumpId>; <tableoid> <oid> <desc> <schema> <name> <owner>`; only lines
whose names are unambiguous (no blanks) are offered for a split load, the rest stay with pg_restore.
"""

from __future__ import annotations

from dataclasses import dataclass

TABLE_DATA = "TABLE DATA"


@dataclass(frozen=True)
class TableData:
    """One table's data entry: its data file is `<dump_id>.dat[.gz]`."""

    dump_id: int
    schema: str
    table: str

    def data_files(self) -> tuple[str, str]:
        """The two names pg_dump may have given its data file (compressed or not)."""
        return f"{self.dump_id}.dat.gz", f"{self.dump_id}.dat"


def table_data_entries(listing: str) -> list[TableData]:
    """Table data entries with unambiguous names."""
    entries: list[TableData] = []
    for line in listing.splitlines():
        if line.startswith(";") or ";" not in line:
            continue
        dump_id, _, rest = line.partition(";")
        words = rest.split()
        if len(words) != 7 or " ".join(words[2:4]) != TABLE_DATA or not dump_id.strip().isdigit():
            continue
        entries.append(TableData(int(dump_id), words[4], words[5]))
    return entries


def without_entries(listing: str, dump_ids: set[int]) -> str:
    """The listing with these entries commented out (what `pg_restore -L` then skips)."""
    lines = []
    for line in listing.splitlines():
        head = line.partition(";")[0].strip()
        lines.append(";" + line if head.isdigit() and int(head) in dump_ids else line)
    return "\n".join(lines) + "\n"
