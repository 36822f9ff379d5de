"""Filesystem storage: nothing is visible under its final name before commit; abort leaves nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradesense_operator.clients.errors import Conflict, NotFound
from tradesense_operator.clients.storage import FilesystemStore


def test_write_is_invisible_until_commit(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path / "bk")
    writer = store.open_writer("a.sql.gz")
    writer.write(b"hello ")
    writer.write(memoryview(b"world"))
    assert not store.exists("a.sql.gz")
    assert [o.name.startswith(".a.sql.gz.partial-") for o in store.list_objects()] == [True]
    writer.commit()
    assert store.exists("a.sql.gz")
    assert b"".join(store.read_chunks("a.sql.gz", chunk_size=4)) == b"hello world"
    assert [o.name for o in store.list_objects()] == ["a.sql.gz"]


def test_abort_removes_the_temporary_file(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    writer = store.open_writer("b.dump")
    writer.write(b"partial")
    writer.abort()
    writer.abort()
    assert store.list_objects() == []


def test_existing_name_is_never_overwritten(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    first = store.open_writer("c.dump")
    second = store.open_writer("c.dump")
    first.write(b"one")
    first.commit()
    second.write(b"two")
    with pytest.raises(Conflict):
        second.commit()
    assert b"".join(store.read_chunks("c.dump")) == b"one"
    assert [o.name for o in store.list_objects()] == ["c.dump"]
    with pytest.raises(Conflict):
        store.open_writer("c.dump")


def test_text_objects_are_replaced_atomically(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    store.put_text("m.json", "{1}")
    store.put_text("m.json", "{2}")
    assert store.get_text("m.json") == "{2}"
    assert [o.name for o in store.list_objects()] == ["m.json"]
    assert store.delete("m.json")
    assert not store.delete("m.json")
    with pytest.raises(NotFound):
        store.get_text("m.json")


@pytest.mark.parametrize("name", ["", "../x", "a/b", ".", ".."])
def test_names_cannot_escape_the_directory(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="invalid backup object name"):
        FilesystemStore(tmp_path).open_writer(name)


def test_tree_is_invisible_until_commit_and_deleted_whole(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path / "bk")
    writer = store.open_tree("b.dir")
    (writer.path / "toc.dat").write_bytes(b"toc")
    (writer.path / "3369.dat.gz").write_bytes(b"data" * 10)
    assert not store.exists("b.dir")
    assert [o.name.startswith(".b.dir.partial-") for o in store.list_objects()] == [True]
    writer.commit()
    assert store.exists("b.dir")
    assert [(o.name, o.size) for o in store.list_objects()] == [("b.dir", 43)]
    assert store.local_tree("b.dir") == tmp_path / "bk" / "b.dir"
    assert b"".join(store.read_chunks("b.dir/3369.dat.gz")) == b"data" * 10
    with pytest.raises(Conflict):
        store.open_tree("b.dir")
    with pytest.raises(ValueError, match="invalid"):
        list(store.read_chunks("b.dir/../x"))
    assert store.delete("b.dir")
    assert not store.delete("b.dir")
    assert list((tmp_path / "bk").iterdir()) == []
    with pytest.raises(NotFound):
        store.local_tree("b.dir")


def test_aborted_tree_leaves_nothing(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path / "bk")
    writer = store.open_tree("c.dir")
    (writer.path / "toc.dat").write_bytes(b"toc")
    writer.abort()
    writer.abort()
    assert store.list_objects() == []
