"""Strict YAML for the CLI: duplicate keys, bad bytes and absurd nesting are errors with a reason."""

from __future__ import annotations

import pytest

from tradesense_operator.cli.yaml_input import YamlInputError, load_documents


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"a: 1\na: 2\n", "duplicate key 'a'"),
        (b"spec: {x: 1, x: 2}\n", "duplicate key 'x'"),
        (b"\xff\xfe\x00", "not UTF-8 text"),
        (b"a: [1, 2\n", "malformed YAML at line"),
        (b"a: " + b"[" * 3000 + b"]" * 3000, "nested too deeply"),
    ],
)
def test_bad_input_names_the_problem(data: bytes, fragment: str) -> None:
    with pytest.raises(YamlInputError, match=fragment) as excinfo:
        load_documents(data, "incident.yaml")
    assert str(excinfo.value).startswith("incident.yaml: ")


def test_good_multi_document_input_keeps_every_mapping_and_skips_empty_ones() -> None:
    docs = load_documents(b"a: 1\n---\n---\nb: {c: [1, 2]}\n", "x")
    assert docs == [{"a": 1}, {"b": {"c": [1, 2]}}]


def test_merge_keys_are_not_duplicates() -> None:
    assert load_documents(b"base: &b {x: 1}\nd:\n  <<: *b\n  y: 2\n", "x")[0]["d"] == {"x": 1, "y": 2}
    assert load_documents(b"base: &b {x: 1}\nd:\n  <<: *b\n  x: 2\n", "x")[0]["d"] == {"x": 2}  # override
