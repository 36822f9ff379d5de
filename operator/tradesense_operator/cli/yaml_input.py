"""Reading user YAML for the CLI strictly: what kubectl refuses, we refuse too, with a one-line reason.

Duplicate keys (PyYAML silently keeps the last one, kubectl rejects them), undecodable bytes and
pathological nesting become `YamlInputError`s instead of tracebacks or silently different input.

Parsing only; must not validate against the models (the commands do).
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode


class YamlInputError(ValueError):
    """The input is not usable YAML; the message says why and where."""


class _StrictLoader(yaml.SafeLoader):
    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<` merges: keys merged in may legally be overridden by the node's own keys
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str) and key in seen:
                raise ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            if isinstance(key, str):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_documents(data: bytes, source: str) -> list[Any]:
    """All non-empty documents of a YAML stream."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlInputError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    try:
        return [d for d in yaml.load_all(text, Loader=_StrictLoader) if d is not None]
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise YamlInputError(f"{source}: malformed YAML{at}: {problem}") from None
    except RecursionError:
        raise YamlInputError(f"{source}: YAML nested too deeply to be a Kubernetes object") from None
