"""Where backup files and their manifests live: a directory (a PVC) or S3-compatible object storage.

The one invariant both keep: a name is visible under its final name only once its bytes are complete
and durable. Filesystem writes go to `.<name>.partial-<token>`, are fsynced, renamed and the directory
fsynced; S3 writes are multipart uploads, which are invisible until completed. Manifests are written the
same way, after the data, so a listing of manifests never names a partial backup.

A tree (pg_dump's directory format) is a set of files under one name: a directory `<name>/` on the
filesystem, objects `<prefix><name>/<file>` in S3. One object per file rather than a tar stream: pg_dump
writes straight into the store's directory and pg_restore reads straight from it (no staging copy, no
serial archive step), every file has its own checksum, and S3 transfers run per file in parallel. The
filesystem fills `.<name>.partial-<token>/` and renames it; S3 stages locally and uploads on commit.
Either way the manifest written afterwards is what makes a tree a backup.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tradesense_operator.clients.errors import ClientError, Conflict, Forbidden, NotFound, Unavailable

PARTIAL_MARKER = ".partial-"
READ_CHUNK = 1 << 20
S3_PART_SIZE = 16 << 20  # S3 needs >= 5 MiB parts except the last
S3_TREE_TRANSFERS = 4


@dataclass(frozen=True)
class StoredObject:
    """One name in the store."""

    name: str
    size: int
    modified_at: float


class BackupWriter(Protocol):
    """A write in progress; invisible until `commit`."""

    def write(self, data: bytes | memoryview) -> None:
        """Append bytes."""
        ...

    def commit(self) -> None:
        """Make the data durable and visible under its final name."""
        ...

    def abort(self) -> None:
        """Discard everything written (idempotent)."""
        ...


class TreeWriter(Protocol):
    """A tree being written: a producer fills the local directory `path`; invisible until `commit`."""

    @property
    def path(self) -> Path:
        """Local, empty directory to write the files into."""
        ...

    def commit(self) -> None:
        """Make every file durable and the tree visible under its final name."""
        ...

    def abort(self) -> None:
        """Discard everything written (idempotent)."""
        ...


class BackupStore(Protocol):
    """Operations the backup engine needs from storage."""

    def location(self, name: str) -> str:
        """Human/URL form of where `name` lives (status.backups[].location)."""
        ...

    def open_writer(self, name: str) -> BackupWriter:
        """Start writing `name`; Conflict when it already exists."""
        ...

    def read_chunks(self, name: str, chunk_size: int = READ_CHUNK) -> Iterator[bytes]:
        """Stream a stored file (or a tree's file, `<tree>/<file>`); NotFound when absent."""
        ...

    def open_tree(self, name: str) -> TreeWriter:
        """Start writing the tree `name`; Conflict when it already exists."""
        ...

    def local_tree(self, name: str) -> Path | None:
        """The tree's directory when it is on this machine (filesystem), else None (download its files)."""
        ...

    def put_text(self, name: str, text: str) -> None:
        """Atomically create or replace a small text object (manifests)."""
        ...

    def get_text(self, name: str) -> str:
        """Read a small text object; NotFound when absent."""
        ...

    def list_objects(self) -> list[StoredObject]:
        """Every top-level name (a tree counts once, with its total size), including partial and orphaned ones."""
        ...

    def exists(self, name: str) -> bool:
        """Whether a final file or tree `name` exists."""
        ...

    def delete(self, name: str) -> bool:
        """Remove the file or the whole tree `name`; False when it was already gone."""
        ...


def _check_name(name: str) -> None:
    if not name or "/" in name or name in (".", "..") or "\x00" in name:
        raise ValueError(f"invalid backup object name {name!r}")


def _check_path(name: str) -> None:
    """A top-level name or `<tree>/<file>`."""
    for part in name.split("/", 1):
        _check_name(part)


# -- filesystem -------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(temp: Path, final: Path, *, durable: Callable[[], None], abort: Callable[[], None]) -> None:
    """Make `temp` (a file or a tree) durable, then rename it to `final`, never over an existing name."""
    try:
        durable()
        if final.exists():
            raise Conflict(f"{final.name} already exists")  # noqa: TRY301  (same cleanup as OSError)
        temp.rename(final)
        _fsync_dir(final.parent)
    except OSError as exc:
        abort()
        raise Unavailable(f"committing {final.name}: {exc.strerror}") from exc
    except Conflict:
        abort()
        raise


class _FileWriter:
    def __init__(self, directory: Path, name: str) -> None:
        self._final = directory / name
        self._temp = directory / f".{name}{PARTIAL_MARKER}{secrets.token_hex(6)}"
        self._fd: int | None = os.open(self._temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._done = False

    def write(self, data: bytes | memoryview) -> None:
        if self._fd is None:
            raise ClientError("write after commit/abort")
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            raise Unavailable(f"writing {self._final.name}: {exc.strerror}") from exc

    def commit(self) -> None:
        if self._fd is None:
            raise ClientError("commit after abort")
        _publish(self._temp, self._final, durable=self._sync_and_close, abort=self.abort)
        self._done = True

    def _sync_and_close(self) -> None:
        assert self._fd is not None
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None

    def abort(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        if not self._done:
            with contextlib.suppress(FileNotFoundError):
                self._temp.unlink()


class _DirectoryTreeWriter:
    def __init__(self, directory: Path, name: str) -> None:
        self._final = directory / name
        self._temp = directory / f".{name}{PARTIAL_MARKER}{secrets.token_hex(6)}"
        self._temp.mkdir(mode=0o700)
        self._done = False

    @property
    def path(self) -> Path:
        return self._temp

    def commit(self) -> None:
        _publish(self._temp, self._final, durable=self._sync_files, abort=self.abort)
        self._done = True

    def _sync_files(self) -> None:
        for entry in sorted(self._temp.iterdir()):
            fd = os.open(entry, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(self._temp)

    def abort(self) -> None:
        if not self._done:
            shutil.rmtree(self._temp, ignore_errors=True)


def _tree_size(path: Path) -> int:
    return sum(entry.stat().st_size for entry in os.scandir(path) if entry.is_file(follow_symlinks=False))


class FilesystemStore:
    """A directory of backups (typically a PVC mount); created on first use."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _ensure(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except PermissionError as exc:
            raise Forbidden(f"cannot create backup directory {self.root}") from exc
        except OSError as exc:
            raise Unavailable(f"backup directory {self.root}: {exc.strerror}") from exc

    def location(self, name: str) -> str:
        return str(self.root / name)

    def open_writer(self, name: str) -> BackupWriter:
        _check_name(name)
        self._ensure()
        if (self.root / name).exists():
            raise Conflict(f"{name} already exists in {self.root}")
        return _FileWriter(self.root, name)

    def open_tree(self, name: str) -> TreeWriter:
        _check_name(name)
        self._ensure()
        if (self.root / name).exists():
            raise Conflict(f"{name} already exists in {self.root}")
        try:
            return _DirectoryTreeWriter(self.root, name)
        except OSError as exc:
            raise Unavailable(f"creating {name} in {self.root}: {exc.strerror}") from exc

    def local_tree(self, name: str) -> Path | None:
        _check_name(name)
        path = self.root / name
        if not path.is_dir():
            raise NotFound(f"{self.location(name)} does not exist")
        return path

    def read_chunks(self, name: str, chunk_size: int = READ_CHUNK) -> Iterator[bytes]:
        _check_path(name)
        try:
            handle = (self.root / name).open("rb", buffering=0)
        except FileNotFoundError as exc:
            raise NotFound(f"{self.location(name)} does not exist") from exc
        with handle:
            while chunk := handle.read(chunk_size):
                yield chunk

    def put_text(self, name: str, text: str) -> None:
        _check_name(name)
        self._ensure()
        temp = self.root / f".{name}{PARTIAL_MARKER}{secrets.token_hex(6)}"
        try:
            with temp.open("wb") as handle:
                handle.write(text.encode())
                handle.flush()
                os.fsync(handle.fileno())
            temp.replace(self.root / name)
            _fsync_dir(self.root)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise Unavailable(f"writing {name}: {exc.strerror}") from exc

    def get_text(self, name: str) -> str:
        _check_name(name)
        try:
            return (self.root / name).read_text()
        except FileNotFoundError as exc:
            raise NotFound(f"{self.location(name)} does not exist") from exc

    def list_objects(self) -> list[StoredObject]:
        if not self.root.is_dir():
            return []
        result = []
        for entry in os.scandir(self.root):
            if entry.is_file(follow_symlinks=False):
                stat = entry.stat()
                result.append(StoredObject(entry.name, stat.st_size, stat.st_mtime))
            elif entry.is_dir(follow_symlinks=False):
                result.append(StoredObject(entry.name, _tree_size(Path(entry.path)), entry.stat().st_mtime))
        return sorted(result, key=lambda o: o.name)

    def exists(self, name: str) -> bool:
        _check_name(name)
        return (self.root / name).exists()

    def delete(self, name: str) -> bool:
        _check_name(name)
        path = self.root / name
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise Unavailable(f"deleting {name}: {exc.strerror}") from exc
        _fsync_dir(self.root)
        return True


# -- S3 ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Location:
    """Bucket, prefix and how to reach it; secrets excluded from repr."""

    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)


def _s3_error(exc: Exception, what: str) -> ClientError:
    code = ""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
    if code in ("NoSuchKey", "404", "NoSuchBucket", "NoSuchUpload"):
        return NotFound(f"{what}: {code}")
    if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return Forbidden(f"{what}: {code}")
    return Unavailable(f"{what}: {code or type(exc).__name__}")


class _S3Writer:
    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._buffer = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._upload_id: str | None = None
        try:
            self._upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        except Exception as exc:
            raise _s3_error(exc, f"start upload of {key}") from exc

    def _flush_part(self) -> None:
        number = len(self._parts) + 1
        try:
            answer = self._client.upload_part(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id,
                                              PartNumber=number, Body=bytes(self._buffer))
        except Exception as exc:
            self.abort()
            raise _s3_error(exc, f"upload part {number} of {self._key}") from exc
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        self._buffer.clear()

    def write(self, data: bytes | memoryview) -> None:
        if self._upload_id is None:
            raise ClientError("write after commit/abort")
        self._buffer += data
        if len(self._buffer) >= S3_PART_SIZE:
            self._flush_part()

    def commit(self) -> None:
        if self._upload_id is None:
            raise ClientError("commit after abort")
        if self._buffer or not self._parts:
            self._flush_part()
        try:
            self._client.complete_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id,
                                                   MultipartUpload={"Parts": self._parts})
        except Exception as exc:
            self.abort()
            raise _s3_error(exc, f"complete upload of {self._key}") from exc
        self._upload_id = None

    def abort(self) -> None:
        if self._upload_id is None:
            return
        upload_id, self._upload_id = self._upload_id, None
        with contextlib.suppress(Exception):
            self._client.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=upload_id)


class _S3TreeWriter:
    """Stages the tree in a local temporary directory; commit uploads each file (in parallel), then removes it."""

    def __init__(self, store: S3Store, name: str) -> None:
        self._store = store
        self._name = name
        self._temp = Path(tempfile.mkdtemp(prefix=f"tso-{name}-"))
        self._uploaded: list[str] = []

    @property
    def path(self) -> Path:
        return self._temp

    def _upload(self, file: Path) -> None:
        member = f"{self._name}/{file.name}"
        self._uploaded.append(member)
        self._store.upload_file(member, file)

    def commit(self) -> None:
        files = sorted(p for p in self._temp.iterdir() if p.is_file())
        try:
            with ThreadPoolExecutor(max_workers=S3_TREE_TRANSFERS, thread_name_prefix="s3-upload") as pool:
                for done in [pool.submit(self._upload, file) for file in files]:
                    done.result()
        except BaseException:
            self.abort()
            raise
        self._uploaded.clear()
        shutil.rmtree(self._temp, ignore_errors=True)

    def abort(self) -> None:
        shutil.rmtree(self._temp, ignore_errors=True)
        for member in self._uploaded:
            with contextlib.suppress(ClientError):
                self._store.delete_key(member)
        self._uploaded.clear()


class S3Store:
    """Objects `<prefix><name>` in one bucket of an S3-compatible service; a tree is `<prefix><name>/<file>`."""

    def __init__(self, location: S3Location, client: Any | None = None) -> None:
        self._loc = location
        self._client_or_none = client

    @property
    def _client(self) -> Any:
        """The boto3 client, built on first use (a scheduler tick that only decides "not due" needs none)."""
        if self._client_or_none is None:
            import boto3  # type: ignore[import-untyped]  # noqa: PLC0415  (only S3 users pay for importing boto3)

            loc = self._loc
            self._client_or_none = boto3.client(
                "s3", endpoint_url=loc.endpoint, region_name=loc.region,
                aws_access_key_id=loc.access_key_id, aws_secret_access_key=loc.secret_access_key,
            )
        return self._client_or_none

    @property
    def bucket(self) -> str:
        """The bucket holding this store's objects."""
        return self._loc.bucket

    def _key(self, name: str) -> str:
        _check_path(name)
        return self._loc.prefix + name

    def location(self, name: str) -> str:
        return f"s3://{self._loc.bucket}/{self._key(name)}"

    def open_writer(self, name: str) -> BackupWriter:
        if self.exists(name):
            raise Conflict(f"{self.location(name)} already exists")
        return _S3Writer(self._client, self._loc.bucket, self._key(name))

    def open_tree(self, name: str) -> TreeWriter:
        _check_name(name)
        if self.exists(name):
            raise Conflict(f"{self.location(name)} already exists")
        return _S3TreeWriter(self, name)

    def local_tree(self, name: str) -> Path | None:
        _check_name(name)
        return None  # objects: the caller downloads (and checks) each file

    def upload_file(self, name: str, path: Path) -> None:
        """Upload a local file as `name` (a tree's member: no existence check, the tree was new)."""
        writer = _S3Writer(self._client, self._loc.bucket, self._key(name))
        try:
            with path.open("rb") as handle:
                while chunk := handle.read(READ_CHUNK):
                    writer.write(chunk)
            writer.commit()
        except BaseException:
            writer.abort()
            raise

    def read_chunks(self, name: str, chunk_size: int = READ_CHUNK) -> Iterator[bytes]:
        key = self._key(name)
        try:
            body = self._client.get_object(Bucket=self._loc.bucket, Key=key)["Body"]
        except Exception as exc:
            raise _s3_error(exc, f"read {key}") from exc
        try:
            while chunk := body.read(chunk_size):
                yield chunk
        finally:
            body.close()

    def put_text(self, name: str, text: str) -> None:
        key = self._key(name)
        try:
            self._client.put_object(Bucket=self._loc.bucket, Key=key, Body=text.encode(),
                                    ContentType="application/json")
        except Exception as exc:
            raise _s3_error(exc, f"write {key}") from exc

    def get_text(self, name: str) -> str:
        key = self._key(name)
        try:
            return str(self._client.get_object(Bucket=self._loc.bucket, Key=key)["Body"].read().decode())
        except Exception as exc:
            raise _s3_error(exc, f"read {key}") from exc

    def _keys(self, prefix: str) -> Iterator[dict[str, Any]]:
        try:
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self._loc.bucket, Prefix=prefix):
                yield from page.get("Contents", [])
        except Exception as exc:
            raise _s3_error(exc, f"list s3://{self._loc.bucket}/{prefix}") from exc

    def list_objects(self) -> list[StoredObject]:
        found: dict[str, StoredObject] = {}
        for obj in self._keys(self._loc.prefix):
            name = str(obj["Key"])[len(self._loc.prefix):]
            top, _, member = name.partition("/")
            if not top or (member and "/" in member):
                continue
            size, modified = int(obj["Size"]), obj["LastModified"].timestamp()
            seen = found.get(top)
            if seen is not None:  # a tree: one entry, total size, newest file's time
                size, modified = seen.size + size, max(seen.modified_at, modified)
            found[top] = StoredObject(top, size, modified)
        return sorted(found.values(), key=lambda o: o.name)

    def _head(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self._loc.bucket, Key=key)
        except Exception as exc:
            err = _s3_error(exc, f"head {key}")
            if isinstance(err, NotFound):
                return False
            raise err from exc
        return True

    def _tree_keys(self, name: str) -> list[str]:
        _check_name(name)
        return [str(obj["Key"]) for obj in self._keys(self._loc.prefix + name + "/")]

    def exists(self, name: str) -> bool:
        return self._head(self._key(name)) or bool(self._tree_keys(name))

    def delete_key(self, name: str) -> None:
        """Delete one object (a file or one file of a tree)."""
        key = self._key(name)
        try:
            self._client.delete_object(Bucket=self._loc.bucket, Key=key)
        except Exception as exc:
            raise _s3_error(exc, f"delete {key}") from exc

    def delete(self, name: str) -> bool:
        if self._head(self._key(name)):
            self.delete_key(name)
            return True
        keys = self._tree_keys(name)
        for key in keys:
            try:
                self._client.delete_object(Bucket=self._loc.bucket, Key=key)
            except Exception as exc:
                raise _s3_error(exc, f"delete {key}") from exc
        return bool(keys)
