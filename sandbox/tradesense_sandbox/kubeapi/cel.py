"""A small, strict evaluator for the CEL subset CRD `x-kubernetes-validations` rules use.

Supported: literals (int, double, string, bool, null, lists, maps), `self`/`oldSelf`, field selection
and indexing, `has(self.x)`, `! && || ?:`, comparisons, `in`, `+ - * / %`, `size()`, `.all/.exists/
.exists_one(v, pred)`, `.startsWith/.endsWith/.contains/.matches`, `int()/double()/string()`.
Anything else is rejected when the CRD is installed (`CelUnsupported`) — a rule the emulator cannot
evaluate must never pass silently.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_TOKEN_RE = re.compile(
    r"\s*(?:(?P<number>\d+\.\d+|\d+)(?P<unsigned>u)?|(?P<string>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')"
    r"|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>==|!=|<=|>=|&&|\|\||[-+*/%<>!?:.,()\[\]{}]))"
)

_METHODS = frozenset({"size", "all", "exists", "exists_one", "startsWith", "endsWith", "contains", "matches"})
_FUNCTIONS = frozenset({"has", "size", "int", "double", "string", "bool"})
_MISSING = object()


class CelUnsupported(ValueError):
    """The rule uses syntax or functions outside the supported subset."""


class CelEvalError(ValueError):
    """Evaluation failed at runtime (e.g. `no such key`), which the API server reports as invalid."""


Node = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class _Tok:
    kind: str
    value: str


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN_RE.match(text, pos)
        if match is None or match.end() == pos:
            raise CelUnsupported(f"cannot parse CEL rule {text!r} at offset {pos}")
        kind = match.lastgroup if match.lastgroup != "unsigned" else "number"
        if match["number"] is not None:
            tokens.append(_Tok("number", match["number"]))
        elif kind is not None:
            tokens.append(_Tok(kind, match[kind]))
        pos = match.end()
    tokens.append(_Tok("end", ""))
    return tokens


def _field(value: Any, name: str) -> Any:
    if isinstance(value, dict):
        if name not in value:
            raise CelEvalError(f"no such key: {name}")
        return value[name]
    raise CelEvalError(f"no such key: {name} (not an object)")


def _cmp_types(a: Any, b: Any, op: str) -> None:
    numeric = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        if not (isinstance(a, bool) and isinstance(b, bool)):
            raise CelEvalError(f"no such overload: {type(a).__name__} {op} {type(b).__name__}")
    elif isinstance(a, numeric) and isinstance(b, numeric):
        return
    elif type(a) is not type(b) and not (a is None or b is None):
        raise CelEvalError(f"no such overload: {type(a).__name__} {op} {type(b).__name__}")


def _size(value: Any) -> int:
    if isinstance(value, str | list | dict):
        return len(value)
    raise CelEvalError(f"no such overload: size({type(value).__name__})")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0
        self.uses_old_self = False

    def peek(self, value: str | None = None) -> bool:
        tok = self.tokens[self.pos]
        return tok.kind != "end" and (value is None or tok.value == value) and tok.kind in ("op", "ident")

    def take(self) -> _Tok:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def expect(self, value: str) -> None:
        tok = self.take()
        if tok.value != value:
            raise CelUnsupported(f"expected {value!r} but found {tok.value!r} in CEL rule {self.text!r}")

    def parse(self) -> Node:
        node = self.conditional()
        if self.tokens[self.pos].kind != "end":
            raise CelUnsupported(f"unexpected {self.tokens[self.pos].value!r} in CEL rule {self.text!r}")
        return node

    def conditional(self) -> Node:
        cond = self.logical_or()
        if self.peek("?"):
            self.take()
            then = self.conditional()
            self.expect(":")
            other = self.conditional()
            return lambda env: then(env) if _as_bool(cond(env)) else other(env)
        return cond

    def logical_or(self) -> Node:
        left = self.logical_and()
        while self.peek("||"):
            self.take()
            left = _or(left, self.logical_and())
        return left

    def logical_and(self) -> Node:
        left = self.relation()
        while self.peek("&&"):
            self.take()
            left = _and(left, self.relation())
        return left

    def relation(self) -> Node:
        left = self.additive()
        tok = self.tokens[self.pos]
        if (tok.value in ("==", "!=", "<", "<=", ">", ">=") and tok.kind == "op") or (
            tok.kind == "ident" and tok.value == "in"
        ):
            self.take()
            right = self.additive()
            return _relation(tok.value, left, right)
        return left

    def additive(self) -> Node:
        left = self.multiplicative()
        while self.tokens[self.pos].value in ("+", "-") and self.tokens[self.pos].kind == "op":
            op = self.take().value
            left = _arith(op, left, self.multiplicative())
        return left

    def multiplicative(self) -> Node:
        left = self.unary()
        while self.tokens[self.pos].value in ("*", "/", "%") and self.tokens[self.pos].kind == "op":
            op = self.take().value
            left = _arith(op, left, self.unary())
        return left

    def unary(self) -> Node:
        if self.peek("!"):
            self.take()
            inner = self.unary()
            return lambda env: not _as_bool(inner(env))
        if self.peek("-"):
            self.take()
            inner = self.unary()
            return lambda env: -_number(inner(env))
        return self.member()

    def member(self) -> Node:
        node = self.primary()
        while True:
            if self.peek("."):
                self.take()
                name = self.take()
                if name.kind != "ident":
                    raise CelUnsupported(f"expected a field name after '.' in CEL rule {self.text!r}")
                node = self.method(node, name.value) if self.peek("(") else _select(node, name.value)
            elif self.peek("["):
                self.take()
                index = self.conditional()
                self.expect("]")
                node = _index(node, index)
            else:
                return node

    def args(self) -> list[Node]:
        self.expect("(")
        args: list[Node] = []
        if not self.peek(")"):
            args.append(self.conditional())
            while self.peek(","):
                self.take()
                args.append(self.conditional())
        self.expect(")")
        return args

    def method(self, target: Node, name: str) -> Node:
        if name not in _METHODS:
            raise CelUnsupported(f"CEL function {name!r} is not supported by the emulator (rule {self.text!r})")
        if name in ("all", "exists", "exists_one"):
            self.expect("(")
            var = self.take()
            if var.kind != "ident":
                raise CelUnsupported(f"expected a variable name in {name}() in CEL rule {self.text!r}")
            self.expect(",")
            predicate = self.conditional()
            self.expect(")")
            return _comprehension(name, target, var.value, predicate)
        args = self.args()
        if name == "size":
            return lambda env: _size(target(env))
        if len(args) != 1:
            raise CelUnsupported(f"{name}() takes one argument in CEL rule {self.text!r}")
        arg = args[0]
        string_ops: dict[str, Callable[[str, str], bool]] = {
            "startsWith": str.startswith,
            "endsWith": str.endswith,
            "contains": lambda s, sub: sub in s,
            "matches": lambda s, pattern: re.search(pattern, s) is not None,
        }
        operation = string_ops[name]
        return lambda env: operation(_string(target(env)), _string(arg(env)))

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind == "number":
            number: int | float = float(tok.value) if "." in tok.value else int(tok.value)
            return lambda _env: number
        if tok.kind == "string":
            text = bytes(tok.value[1:-1], "utf-8").decode("unicode_escape")
            return lambda _env: text
        if tok.kind == "op" and tok.value == "(":
            inner = self.conditional()
            self.expect(")")
            return inner
        if tok.kind == "op" and tok.value == "[":
            items: list[Node] = []
            if not self.peek("]"):
                items.append(self.conditional())
                while self.peek(","):
                    self.take()
                    items.append(self.conditional())
            self.expect("]")
            return lambda env: [item(env) for item in items]
        if tok.kind == "ident":
            return self.identifier(tok.value)
        raise CelUnsupported(f"unexpected {tok.value!r} in CEL rule {self.text!r}")

    def identifier(self, name: str) -> Node:
        constants = {"true": True, "false": False, "null": None}
        if name in constants:
            constant = constants[name]
            return lambda _env: constant
        if self.peek("("):
            if name not in _FUNCTIONS:
                raise CelUnsupported(f"CEL function {name!r} is not supported by the emulator (rule {self.text!r})")
            if name == "has":
                return self.has()
            args = self.args()
            if len(args) != 1:
                raise CelUnsupported(f"{name}() takes one argument in CEL rule {self.text!r}")
            arg = args[0]
            conversions: dict[str, Callable[[Any], Any]] = {
                "size": _size,
                "int": int,
                "double": float,
                "string": str,
                "bool": bool,
            }
            convert = conversions[name]
            return lambda env: convert(arg(env))
        if name == "oldSelf":
            self.uses_old_self = True

        def lookup(env: dict[str, Any]) -> Any:
            if name not in env:
                raise CelEvalError(f"undeclared reference to {name!r}")
            return env[name]

        return lookup

    def has(self) -> Node:
        self.expect("(")
        start = self.pos
        target = self.primary()
        selections: list[str] = []
        while self.peek("."):
            self.take()
            selections.append(self.take().value)
        self.expect(")")
        if not selections:
            raise CelUnsupported(f"has() needs a field selection like has(self.x) in CEL rule {self.text!r} (at {start})")
        *path, last = selections

        def has(env: dict[str, Any]) -> bool:
            value = target(env)
            for part in path:
                value = _field(value, part)
            return isinstance(value, dict) and last in value

        return has


def _as_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise CelEvalError(f"expected a bool, got {type(value).__name__}")
    return value


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CelEvalError(f"expected a number, got {type(value).__name__}")
    return value


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise CelEvalError(f"expected a string, got {type(value).__name__}")
    return value


def _or(left: Node, right: Node) -> Node:
    def evaluate(env: dict[str, Any]) -> bool:
        # CEL's || is commutative over errors: true wins even if the other side fails.
        try:
            if _as_bool(left(env)):
                return True
        except CelEvalError:
            if _as_bool(right(env)):
                return True
            raise
        return _as_bool(right(env))

    return evaluate


def _and(left: Node, right: Node) -> Node:
    def evaluate(env: dict[str, Any]) -> bool:
        try:
            if not _as_bool(left(env)):
                return False
        except CelEvalError:
            if not _as_bool(right(env)):
                return False
            raise
        return _as_bool(right(env))

    return evaluate


def _relation(op: str, left: Node, right: Node) -> Node:
    def evaluate(env: dict[str, Any]) -> bool:
        a, b = left(env), right(env)
        if op == "in":
            if not isinstance(b, list | dict):
                raise CelEvalError("'in' needs a list or map on the right")
            return a in b
        _cmp_types(a, b, op)
        if op == "==":
            return bool(a == b)
        if op == "!=":
            return bool(a != b)
        try:
            return bool({"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op])
        except TypeError as exc:
            raise CelEvalError(f"no such overload for {op}") from exc

    return evaluate


def _arith(op: str, left: Node, right: Node) -> Node:
    def evaluate(env: dict[str, Any]) -> Any:
        a, b = left(env), right(env)
        if op == "+" and isinstance(a, str) and isinstance(b, str):
            return a + b
        if op == "+" and isinstance(a, list) and isinstance(b, list):
            return a + b
        x, y = _number(a), _number(b)
        if op == "+":
            return x + y
        if op == "-":
            return x - y
        if op == "*":
            return x * y
        if y == 0:
            raise CelEvalError("division by zero")
        if op == "/":
            return x // y if isinstance(x, int) and isinstance(y, int) else x / y
        return x % y

    return evaluate


def _select(target: Node, name: str) -> Node:
    return lambda env: _field(target(env), name)


def _index(target: Node, index: Node) -> Node:
    def evaluate(env: dict[str, Any]) -> Any:
        container, key = target(env), index(env)
        try:
            return container[key]
        except (KeyError, IndexError, TypeError) as exc:
            raise CelEvalError(f"no such key: {key!r}") from exc

    return evaluate


def _comprehension(name: str, target: Node, var: str, predicate: Node) -> Node:
    def evaluate(env: dict[str, Any]) -> bool:
        container = target(env)
        if not isinstance(container, list | dict):
            raise CelEvalError(f"{name}() needs a list or map")
        results = [_as_bool(predicate({**env, var: item})) for item in container]
        if name == "all":
            return all(results)
        if name == "exists":
            return any(results)
        return results.count(True) == 1

    return evaluate


@dataclass(frozen=True)
class Program:
    """A compiled rule; `transition` rules (using oldSelf) only run on updates."""

    rule: str
    node: Node
    transition: bool

    def evaluate(self, value: Any, old_value: Any = _MISSING) -> bool:
        env: dict[str, Any] = {"self": value}
        if old_value is not _MISSING:
            env["oldSelf"] = old_value
        return _as_bool(self.node(env))


def compile_rule(rule: str) -> Program:
    """Parse `rule`, raising `CelUnsupported` for anything outside the supported subset."""
    parser = _Parser(rule)
    node = parser.parse()
    return Program(rule, node, parser.uses_old_self)
