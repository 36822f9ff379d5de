"""The manifest written next to every finished backup: what it is, how to check it, whether it passed.

A backup exists for retention, restore and listing only through its manifest. The manifest is written
after the data file is durable, so a crashed or failed run leaves at most an orphan data file (or a
temporary one) that nothing mistakes for a backup.
Owns the manifest's fields and encoding; must not read or write storage (the backup services do).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from tradesense_operator.api.v1alpha1.backup import BackupFormat

MANIFEST_SUFFIX = ".manifest.json"
SCHEMA_VERSION = 1


class ManifestError(ValueError):
    """A manifest that cannot be parsed or misses required fields."""


@dataclass(frozen=True)
class Verification:
    """Outcome of verifying one backup."""

    ok: bool
    integrity: bool | None = None
    test_restore: bool | None = None
    verified_at: datetime | None = None
    detail: str = ""


@dataclass(frozen=True)
class StoredFile:
    """One file of a directory-format backup, checked on its own by verification and restores."""

    name: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class BackupManifest:
    """Everything known about one complete, successful backup."""

    id: str
    label: str
    database: str
    format: BackupFormat
    file_name: str
    started_at: datetime
    finished_at: datetime
    bytes: int
    sha256: str
    raw_bytes: int
    duration_seconds: float
    compression_level: int
    table_counts: dict[str, int] = field(default_factory=dict)
    kind: str = "scheduled"
    stamp: str = ""
    verification: Verification | None = None
    files: tuple[StoredFile, ...] = ()
    """Directory format: every file with its size and sha256 (`sha256` above is then the digest of this list)."""

    @property
    def verified(self) -> bool:
        """Passed the verification that was configured when it ran."""
        return self.verification is not None and self.verification.ok

    @property
    def manifest_name(self) -> str:
        """Object/file name of this manifest."""
        return self.file_name + MANIFEST_SUFFIX

    def with_verification(self, verification: Verification) -> BackupManifest:
        """A copy with the verification outcome recorded."""
        return replace(self, verification=verification)

    def to_json(self) -> str:
        """Stable JSON (sorted keys) for storage."""
        data: dict[str, Any] = asdict(self)
        data["schema_version"] = SCHEMA_VERSION
        data["format"] = self.format.value
        return json.dumps(data, default=_encode, sort_keys=True, indent=1)

    @classmethod
    def from_json(cls, text: str) -> BackupManifest:
        """Parse; ManifestError on anything unexpected."""
        try:
            data = json.loads(text)
            data.pop("schema_version", None)
            ver = data.pop("verification", None)
            verification = None
            if ver is not None:
                verified_at = ver.get("verified_at")
                verification = Verification(
                    ok=bool(ver["ok"]),
                    integrity=ver.get("integrity"),
                    test_restore=ver.get("test_restore"),
                    verified_at=datetime.fromisoformat(verified_at) if verified_at else None,
                    detail=str(ver.get("detail", "")),
                )
            return cls(
                id=str(data["id"]),
                label=str(data["label"]),
                database=str(data["database"]),
                format=BackupFormat(data["format"]),
                file_name=str(data["file_name"]),
                started_at=datetime.fromisoformat(data["started_at"]),
                finished_at=datetime.fromisoformat(data["finished_at"]),
                bytes=int(data["bytes"]),
                sha256=str(data["sha256"]),
                raw_bytes=int(data["raw_bytes"]),
                duration_seconds=float(data["duration_seconds"]),
                compression_level=int(data["compression_level"]),
                table_counts={str(k): int(v) for k, v in dict(data.get("table_counts", {})).items()},
                kind=str(data.get("kind", "scheduled")),
                stamp=str(data.get("stamp", "")),
                verification=verification,
                files=tuple(StoredFile(str(f["name"]), int(f["bytes"]), str(f["sha256"]))
                            for f in data.get("files", [])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"invalid backup manifest: {type(exc).__name__}: {exc}") from exc


def files_digest(files: Sequence[StoredFile]) -> str:
    """sha256 over `name size sha256` lines sorted by name: one value that changes when any file does."""
    lines = "".join(f"{f.name} {f.bytes} {f.sha256}\n" for f in sorted(files, key=lambda f: f.name))
    return hashlib.sha256(lines.encode()).hexdigest()


def _encode(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")
