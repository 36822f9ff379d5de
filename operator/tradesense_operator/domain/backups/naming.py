"""Backup ids, file names and scratch database names.

Names follow the runbook (`backup_20240116_020000.sql.gz`, `postgres_20240116_010000.sql.gz`): a label
then the UTC start time, so a directory listing sorts chronologically and a human finds files as before.
Owns only the names; must not touch storage or check whether a name is taken (dump_pipeline does).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from tradesense_operator.api.v1alpha1.backup import BackupFormat

EXTENSIONS = {BackupFormat.PLAIN_GZIP: ".sql.gz", BackupFormat.CUSTOM: ".dump", BackupFormat.PLAIN_ZSTD: ".sql.zst",
              BackupFormat.DIRECTORY: ".dir", BackupFormat.BINARY: ".bin"}
PARTIAL_MARKER = ".partial-"
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9_.-]*[a-z0-9])?$")
MAX_DB_NAME = 63


def validate_label(label: str) -> str:
    """Labels become file-name prefixes; keep them to a safe alphabet."""
    if not _LABEL.match(label) or len(label) > 100:
        raise ValueError(f"label: {label!r} must be lower-case letters, digits, '.', '_' or '-' (max 100)")
    return label


def backup_id(label: str, started_at: datetime, sequence: int = 0) -> str:
    """`<label>_<YYYYmmdd>_<HHMMSS>` (UTC), with `-<n>` when several start in the same second."""
    stamp = started_at.astimezone(UTC).strftime("%Y%m%d_%H%M%S")
    base = f"{validate_label(label)}_{stamp}"
    return base if sequence == 0 else f"{base}-{sequence}"


def file_name(id_: str, fmt: BackupFormat) -> str:
    """Stored file name of a backup."""
    return id_ + EXTENSIONS[fmt]


def is_temporary(name: str) -> bool:
    """Whether a stored name is an in-progress upload/write (never a backup)."""
    return PARTIAL_MARKER in name


def scratch_database(database: str, id_: str) -> str:
    """`<db>_verify_<id>` for test restores, shortened to PostgreSQL's 63-byte identifier limit."""
    suffix = "_verify_" + re.sub(r"[^a-z0-9_]", "_", id_.lower())
    if len(suffix) > MAX_DB_NAME - 1:
        suffix = suffix[: MAX_DB_NAME - 1]
    return database[: MAX_DB_NAME - len(suffix)] + suffix
