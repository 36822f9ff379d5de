"""What each backup format is on disk: its default compression level and whether it is one file or a tree.

Owns the per-format facts the pipeline, naming and validation share; it must not do any I/O. The
defaults were chosen by measurement (bench/backup.py, docs/backups.md): gzip keeps the runbook's level 6
for compatibility, zstd's level 1 keeps up with pg_dump at a ratio close to gzip -6.
"""

from __future__ import annotations

from tradesense_operator.api.v1alpha1.backup import ZSTD_FORMATS, BackupFormat

DEFAULT_LEVELS = {
    BackupFormat.PLAIN_GZIP: 6,
    BackupFormat.CUSTOM: 6,
    BackupFormat.PLAIN_ZSTD: 1,
    BackupFormat.DIRECTORY: 1,
    BackupFormat.BINARY: 1,
}


def effective_level(fmt: BackupFormat, level: int | None) -> int:
    """The level a backup runs with: the requested one, else the format's default; ValueError when out of range."""
    if level is None:
        return DEFAULT_LEVELS[fmt]
    low, high = (1, 19) if fmt in ZSTD_FORMATS else (0, 9)
    if not low <= level <= high:
        raise ValueError(f"compression level {level} is outside {low}-{high} for format {fmt.value}")
    return level


def is_tree(fmt: BackupFormat) -> bool:
    """Stored as a set of files under one name (directory, binary) rather than one file."""
    return fmt in {BackupFormat.DIRECTORY, BackupFormat.BINARY}

