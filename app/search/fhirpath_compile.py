"""Compile the FHIRPath of search parameters into plain Python walkers over JSON resources.

Search parameters say what to index with FHIRPath (spec fhirpath.html, search.html#table).
A general FHIRPath engine (fhirpathpy) costs tens of microseconds per expression; the
expressions of the R4B definitions only use a small subset of the language, so this module
compiles that subset, once, into closures that walk the parsed JSON body directly:

- paths: ``Observation.code.coding``, relative ``code``, ``%resource.x``, indexers ``x[0]``;
- choice elements: ``Observation.value`` walks ``valueQuantity``, ``valueString``, ...;
- casts: ``x as T``, ``x.as(T)``, ``x.ofType(T)`` (a choice element reads only ``xT``);
- unions ``a | b`` (duplicates removed, as FHIRPath's union does);
- ``where(...)`` with ``=``, ``!=``, ``and``, ``or``, ``not()``, ``exists()``, ``empty()``,
  ``matches('re')``, ``startsWith('s')``, and boolean expressions of the same pieces
  (``Patient.deceased.exists() and Patient.deceased != false``);
- the ``resolve()`` checks of the definitions arrive already rewritten by
  scripts/gen_search_parameters.py into ``where(<REFERENCE_TYPE_CHECK>)`` (see
  ``reference_type_check``), which the functions above evaluate without resolving anything.

Anything else raises CompileError; callers may then fall back to a general engine.

Every value carries a type tag: the FHIR type (``CodeableConcept``, ``dateTime``, ``Reference``)
or, for backbone elements, the element path (``Observation.component``). Tags come from the
element table (``Model``): schemas/fhir/search_parameters.json holds the R4B elements that
search expressions touch, so this module needs no FHIR model classes.

Semantics follow FHIRPath (and fhirpathpy, the reference used by the tests) for this subset:
navigation flattens lists and skips primitives that only carry extensions (``_birthDate``),
``=`` on collections of different size is false, logic is three-valued (empty = unknown).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

Item = tuple[str, Any]
"""A value and its type tag."""

Step = Callable[[list[Item], Any], list[Item]]
"""A compiled expression: (input collection, root resource) -> output collection."""


class CompileError(ValueError):
    """The expression is outside the compiled subset (or names unknown elements)."""


@dataclass(frozen=True, slots=True)
class ElementInfo:
    """What the walker needs of an ElementDefinition: its types, choice-ness, content ref."""

    types: tuple[str, ...]
    choice: bool = False
    content_reference: str | None = None


class Model(Protocol):
    """Element lookup by definition path ("Observation.component.value", "Period.start")."""

    def element(self, path: str) -> ElementInfo | None:
        """The element at path, or None when the type has no such element."""
        ...

    def parent(self, type_name: str) -> str | None:
        """The base type of a type derived by specialisation (Age -> Quantity), if any."""
        ...


# --- resolve() rewrite ------------------------------------------------------------------

_ID = "[A-Za-z0-9.-]{1,64}"
_LITERAL_REF = f"^(.*/)?TYPE/{_ID}(/_history/{_ID})?$"


def reference_type_check(type_name: str) -> str:
    """A resolve()-free FHIRPath condition: "this Reference points to a type_name".

    The definitions write ``x.where(resolve() is Patient)``. Resolving needs a server, so
    scripts/gen_search_parameters.py writes ``x.where(<this condition>)`` instead. A
    Reference counts as pointing to type_name when its literal reference is
    ``[base/]type_name/id[/_history/vid]`` (relative or absolute URL), or, when the reference
    is absent or not of that literal form (a contained ``#id``, a ``urn:uuid:``), when its
    ``type`` element says type_name. Contained targets without ``type`` are not recognised.
    """
    if not re.fullmatch(r"[A-Z][A-Za-z]+", type_name):
        raise ValueError(f"not a resource type name: {type_name!r}")
    own = _LITERAL_REF.replace("TYPE", type_name)
    anything = _LITERAL_REF.replace("TYPE", "[A-Z][A-Za-z]+")
    return (
        f"reference.matches('{own}') or (type = '{type_name}' and "
        f"(reference.exists() and reference.matches('{anything}')).not())"
    )


# --- parser -----------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"""\s*(?:
    (?P<str>'(?:[^'\\]|\\.)*')
    |(?P<num>\d+(?:\.\d+)?)
    |(?P<var>%[A-Za-z_][A-Za-z0-9_]*)
    |(?P<id>[A-Za-z_][A-Za-z0-9_]*|`[^`]+`)
    |(?P<op>!=|<=|>=|!~|[.()\[\]|=,<>+\-*/&~])
    )""",
    re.X,
)
_ESCAPES = {"'": "'", '"': '"', "`": "`", "\\": "\\", "/": "/", "n": "\n", "r": "\r", "t": "\t"}


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str
    text: str
    pos: int


def _unescape(body: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt == "u" and i + 5 < len(body):
                out.append(chr(int(body[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None or match.end() == pos:
            if text[pos:].strip() == "":
                break
            raise CompileError(f"cannot read {text[pos : pos + 20]!r} at {pos}")
        kind = match.lastgroup
        if kind is None:  # trailing whitespace
            break
        tokens.append(_Tok(kind, match.group(kind), match.start(kind)))
        pos = match.end()
    return tokens


@dataclass(frozen=True, slots=True)
class Lit:
    """A literal: string, boolean or number."""

    value: Any


@dataclass(frozen=True, slots=True)
class Var:
    """An environment variable (%resource)."""

    name: str


@dataclass(frozen=True, slots=True)
class Ident:
    """A leading identifier: a member name, or a type name when it names the context."""

    name: str


@dataclass(frozen=True, slots=True)
class Member:
    """base.name"""

    base: Node
    name: str


@dataclass(frozen=True, slots=True)
class Call:
    """[base.]name(args)"""

    base: Node | None
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Index:
    """base[index]"""

    base: Node
    index: Node


@dataclass(frozen=True, slots=True)
class Binary:
    """left op right; for `is`/`as` the right side is an Ident naming the type."""

    op: str
    left: Node
    right: Node


Node = Lit | Var | Ident | Member | Call | Index | Binary

_BINARY_POWER = {
    "implies": 1,
    "or": 2,
    "xor": 2,
    "and": 3,
    "in": 4,
    "contains": 4,
    "=": 5,
    "~": 5,
    "!=": 5,
    "!~": 5,
    "<": 6,
    ">": 6,
    "<=": 6,
    ">=": 6,
    "|": 7,
    "is": 8,
    "as": 8,
    "+": 9,
    "-": 9,
    "&": 9,
    "*": 10,
    "/": 10,
    "div": 10,
    "mod": 10,
}


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self) -> _Tok | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, text: str | None = None) -> _Tok:
        tok = self.peek()
        if tok is None or (text is not None and tok.text != text):
            where = "end" if tok is None else f"{tok.text!r} at {tok.pos}"
            raise CompileError(f"expected {text or 'more'} but found {where} in {self.text!r}")
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.expr(0)
        if self.peek() is not None:
            tok = self.take()
            raise CompileError(f"unexpected {tok.text!r} at {tok.pos} in {self.text!r}")
        return node

    def binary_op(self) -> str | None:
        tok = self.peek()
        if tok is None or tok.kind not in ("op", "id"):
            return None
        return tok.text if tok.text in _BINARY_POWER else None

    def expr(self, min_power: int) -> Node:
        left = self.postfix(self.primary())
        while (op := self.binary_op()) is not None and _BINARY_POWER[op] > min_power:
            self.take()
            if op in ("is", "as"):
                right: Node = Ident(self.type_name())
            else:
                right = self.expr(_BINARY_POWER[op])
            left = Binary(op, left, right)
        return left

    def type_name(self) -> str:
        name = self.take().text
        while (tok := self.peek()) is not None and tok.text == ".":
            self.take()
            name = f"{name}.{self.take().text}"
        return name.removeprefix("FHIR.")

    def args(self) -> tuple[Node, ...]:
        self.take("(")
        args: list[Node] = []
        tok = self.peek()
        if tok is not None and tok.text == ")":
            self.take()
            return ()
        while True:
            args.append(self.expr(0))
            if self.take().text == ")":
                return tuple(args)

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind == "str":
            return Lit(_unescape(tok.text[1:-1]))
        if tok.kind == "num":
            return Lit(Decimal(tok.text) if "." in tok.text else int(tok.text))
        if tok.kind == "var":
            return Var(tok.text[1:])
        if tok.text == "(":
            inner = self.expr(0)
            self.take(")")
            return inner
        if tok.kind == "op" and tok.text == "-":
            operand = self.postfix(self.primary())
            if isinstance(operand, Lit) and isinstance(operand.value, int | Decimal):
                return Lit(-operand.value)
            raise CompileError("unary minus on a non-literal")
        if tok.kind == "id":
            name = tok.text.strip("`")
            if name in ("true", "false"):
                return Lit(name == "true")
            nxt = self.peek()
            if nxt is not None and nxt.text == "(":
                return Call(None, name, self.args())
            return Ident(name)
        raise CompileError(f"unexpected {tok.text!r} at {tok.pos} in {self.text!r}")

    def postfix(self, node: Node) -> Node:
        while (tok := self.peek()) is not None and tok.text in (".", "["):
            self.take()
            if tok.text == "[":
                index = self.expr(0)
                self.take("]")
                node = Index(node, index)
                continue
            name = self.take().text.strip("`")
            nxt = self.peek()
            if nxt is not None and nxt.text == "(":
                node = Call(node, name, self.args())
            else:
                node = Member(node, name)
        return node


def parse(text: str) -> Node:
    """Parse FHIRPath text into a small AST (the grammar subset search expressions use)."""
    return _Parser(text).parse()


def split_union(text: str) -> list[str]:
    """The top-level ``|`` branches of an expression, as written (whitespace trimmed)."""
    parts: list[str] = []
    depth = 0
    start = 0
    for tok in _tokenize(text):
        if tok.text in ("(", "["):
            depth += 1
        elif tok.text in (")", "]"):
            depth -= 1
        elif tok.text == "|" and depth == 0:
            parts.append(text[start : tok.pos])
            start = tok.pos + 1
    parts.append(text[start:])
    return [part.strip() for part in parts]


def strip_parens(text: str) -> str:
    """text without parentheses that enclose all of it: "((a as T))" -> "a as T"."""
    while text.startswith("(") and text.endswith(")"):
        depth = 0
        for pos, tok in enumerate(_tokenize(text)):
            if tok.text == "(":
                depth += 1
            elif tok.text == ")":
                depth -= 1
                if depth == 0 and tok.pos != len(text) - 1:
                    return text
            if pos == 0 and tok.text != "(":
                return text
        text = text[1:-1].strip()
    return text


# --- compiler ---------------------------------------------------------------------------

Static = frozenset[tuple[str, str | None]]
"""What a compiled step may yield: (type tag, defining element path or None)."""

_BOOL_TAG = "boolean"


def _literal_tag(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, Decimal):
        return "decimal"
    return "string"


def _capitalise(type_code: str) -> str:
    return type_code[:1].upper() + type_code[1:]


def _is_resource_tag(tag: str) -> bool:
    return tag in ("Resource", "DomainResource")


def _truth(items: list[Item]) -> bool | None:
    """FHIRPath singleton evaluation of a collection as a boolean (None = empty)."""
    if not items:
        return None
    value = items[0][1]
    return value if isinstance(value, bool) else True


def _values_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    return bool(a == b)


def _identical(a: Any, b: Any) -> bool:
    """Deep equality that keeps decimals of different precision apart (1.0 vs 1.00)."""
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and a.keys() == b.keys()
            and all(_identical(value, b[key]) for key, value in a.items())
        )
    if isinstance(a, list):
        return (
            isinstance(b, list)
            and len(a) == len(b)
            and all(_identical(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        return str(a) == str(b)
    return _values_equal(a, b)


def _dedupe(items: list[Item]) -> list[Item]:
    """Union semantics: later duplicates dropped (decimals compared by their text, so that an
    index never loses a stored precision)."""
    out: list[Item] = []
    for item in items:
        value = item[1]
        if not any(_identical(value, kept[1]) for kept in out):
            out.append(item)
    return out


def _identity(items: list[Item], _root: Any) -> list[Item]:
    return items


@dataclass(frozen=True, slots=True)
class _Compiled:
    fn: Step
    out: Static
    # Set for runs of single-typed member steps, fused into one loop: (origin, first in-tag,
    # json keys, out tag).
    chain: tuple[Step, str, tuple[str, ...], str] | None = None


class _Compiler:
    def __init__(self, model: Model, text: str, root_type: str) -> None:
        self.model = model
        self.text = text
        self.root_tag = root_type

    def fail(self, why: str) -> CompileError:
        return CompileError(f"{why} in {self.text!r}")

    # Types -------------------------------------------------------------------------

    def is_a(self, tag: str, type_name: str) -> bool:
        seen = 0
        current: str | None = tag
        while current is not None and seen < 16:
            if current == type_name:
                return True
            current = self.model.parent(current)
            seen += 1
        return False

    def child_table(
        self, ctx: Static, name: str, only: str | None
    ) -> dict[str, list[tuple[str, str, str]]]:
        """in-tag -> [(json key, out tag, element path)] for member `name`."""
        table: dict[str, list[tuple[str, str, str]]] = {}
        for tag, _ in ctx:
            if _is_resource_tag(tag):
                raise self.fail(f"navigation into an untyped resource ({tag}.{name})")
            path = f"{tag}.{name}"
            info = self.model.element(path)
            if info is None:
                continue
            entries: list[tuple[str, str, str]] = []
            for type_code in info.types:
                if info.content_reference is not None:
                    out_tag = info.content_reference
                elif type_code in ("BackboneElement", "Element"):
                    out_tag = path
                else:
                    out_tag = type_code
                if only is not None and not self.is_a(out_tag, only):
                    continue
                key = f"{name}{_capitalise(type_code)}" if info.choice else name
                entries.append((key, out_tag, path))
            table[tag] = entries
        if not table:
            tags = ", ".join(sorted(tag for tag, _ in ctx))
            raise self.fail(f"no element {name!r} on {tags}")
        if only is not None and not any(table.values()):
            raise self.fail(f"{name!r} can never be a {only}")
        return table

    # Nodes -------------------------------------------------------------------------

    def compile(self, node: Node, ctx: Static) -> _Compiled:
        if isinstance(node, Lit):
            items: list[Item] = [(_literal_tag(node.value), node.value)]
            return _Compiled(lambda _items, _root: list(items), frozenset({(items[0][0], None)}))
        if isinstance(node, Var):
            return self.variable(node)
        if isinstance(node, Ident):
            return self.identifier(node.name, ctx)
        if isinstance(node, Member):
            base = self.compile(node.base, ctx)
            return self.member(base, node.name, None)
        if isinstance(node, Index):
            return self.index(node, ctx)
        if isinstance(node, Call):
            return self.call(node, ctx)
        return self.binary(node, ctx)

    def variable(self, node: Var) -> _Compiled:
        if node.name not in ("resource", "rootResource"):
            raise self.fail(f"unsupported variable %{node.name}")
        root_tag = self.root_tag

        def run(_items: list[Item], root: Any) -> list[Item]:
            return [(root_tag, root)]

        return _Compiled(run, frozenset({(root_tag, None)}))

    def identifier(self, name: str, ctx: Static) -> _Compiled:
        if name[:1].isupper():
            matching = frozenset(entry for entry in ctx if entry[0] == name)
            if not matching:
                raise self.fail(f"{name} does not name the context type")
            if matching == ctx:
                return _Compiled(_identity, ctx)

            def keep(items: list[Item], _root: Any) -> list[Item]:
                return [item for item in items if item[0] == name]

            return _Compiled(keep, matching)
        return self.member(_Compiled(_identity, ctx), name, None)

    def member(self, base: _Compiled, name: str, only: str | None) -> _Compiled:
        table = self.child_table(base.out, name, only)
        out = frozenset((tag, path) for entries in table.values() for _, tag, path in entries)
        base_fn = base.fn
        if len(table) == 1:
            ((in_tag, entries),) = table.items()
            if len(entries) == 1:
                ((key, out_tag, _),) = entries
                if base.chain is not None:
                    origin, first_tag, keys, _ = base.chain
                    chain = (origin, first_tag, (*keys, key), out_tag)
                else:
                    chain = (base_fn, in_tag, (key,), out_tag)
                return _Compiled(self._chain(*chain), out, chain)
        lookup = {
            tag: tuple((key, out_tag) for key, out_tag, _ in ents) for tag, ents in table.items()
        }

        def walk(items: list[Item], root: Any) -> list[Item]:
            result: list[Item] = []
            for tag, value in base_fn(items, root):
                if not isinstance(value, dict):
                    continue
                for key, out_tag in lookup.get(tag, ()):
                    child = value.get(key)
                    if child is None:
                        continue
                    if isinstance(child, list):
                        result.extend((out_tag, x) for x in child if x is not None)
                    else:
                        result.append((out_tag, child))
            return result

        return _Compiled(walk, out)

    @staticmethod
    def _chain(origin: Step, in_tag: str, keys: tuple[str, ...], out_tag: str) -> Step:
        """Member steps with one type each: walk raw JSON, tag only the result."""

        def walk(items: list[Item], root: Any) -> list[Item]:
            values: list[Any] = []
            for tag, value in items if origin is _identity else origin(items, root):
                if tag == in_tag:
                    values.append(value)
            for key in keys:
                found: list[Any] = []
                for value in values:
                    if isinstance(value, dict):
                        child = value.get(key)
                        if child is None:
                            continue
                        if isinstance(child, list):
                            for x in child:
                                if x is not None:
                                    found.append(x)
                        else:
                            found.append(child)
                if not found:
                    return []
                values = found
            result: list[Item] = []
            for value in values:
                result.append((out_tag, value))
            return result

        return walk

    def index(self, node: Index, ctx: Static) -> _Compiled:
        if not isinstance(node.index, Lit) or not isinstance(node.index.value, int):
            raise self.fail("only literal integer indexers are supported")
        position = node.index.value
        base = self.compile(node.base, ctx)
        base_fn = base.fn

        def pick(items: list[Item], root: Any) -> list[Item]:
            found = base_fn(items, root)
            return [found[position]] if 0 <= position < len(found) else []

        return _Compiled(pick, base.out)

    def cast(self, base_node: Node, type_name: str, ctx: Static) -> _Compiled:
        if isinstance(base_node, Member):
            # Choice elements: read only the key of that type (valueQuantity).
            parent = self.compile(base_node.base, ctx)
            table = self.child_table(parent.out, base_node.name, None)
            if not any(_is_resource_tag(t) for ents in table.values() for _, t, _ in ents):
                return self.member(parent, base_node.name, type_name)
            base = self.member(parent, base_node.name, None)
        else:
            base = self.compile(base_node, ctx)
        keep_tags = frozenset(tag for tag, _ in base.out if self.is_a(tag, type_name))
        untyped = any(_is_resource_tag(tag) for tag, _ in base.out)
        if not keep_tags and not untyped:
            raise self.fail(f"the value can never be a {type_name}")
        base_fn = base.fn
        out = frozenset((tag, path) for tag, path in base.out if tag in keep_tags)
        if untyped:
            out |= {(type_name, None)}

        def keep(items: list[Item], root: Any) -> list[Item]:
            result: list[Item] = []
            for tag, value in base_fn(items, root):
                if tag in keep_tags:
                    result.append((tag, value))
                elif (
                    _is_resource_tag(tag)
                    and isinstance(value, dict)
                    and value.get("resourceType") == type_name
                ):
                    result.append((type_name, value))
            return result

        return _Compiled(keep, out)

    def call(self, node: Call, ctx: Static) -> _Compiled:
        name, args = node.name, node.args
        if name in ("as", "ofType"):
            if len(args) != 1 or not isinstance(args[0], Ident) or node.base is None:
                raise self.fail(f"{name}() needs a type name")
            return self.cast(node.base, args[0].name.removeprefix("FHIR."), ctx)
        if node.base is None:
            if name == "resolve":
                raise self.fail("resolve() needs a server; rewrite it first")
            base = _Compiled(_identity, ctx)
        else:
            base = self.compile(node.base, ctx)
        base_fn = base.fn
        if name == "where":
            if len(args) != 1:
                raise self.fail("where() takes one argument")
            cond = self.compile(args[0], base.out).fn

            def where(items: list[Item], root: Any) -> list[Item]:
                result: list[Item] = []
                for item in base_fn(items, root):
                    verdict = cond([item], root)
                    if len(verdict) == 1 and verdict[0][1] is True:
                        result.append(item)
                return result

            return _Compiled(where, base.out)
        boolean = frozenset({(_BOOL_TAG, None)})
        if name in ("exists", "empty", "not") and not args:
            return _Compiled(self._collection_fn(name, base_fn), boolean)
        if name == "first" and not args:
            return _Compiled(lambda items, root: base_fn(items, root)[:1], base.out)
        if name in ("matches", "startsWith", "endsWith", "contains") and len(args) == 1:
            arg = args[0]
            if not isinstance(arg, Lit) or not isinstance(arg.value, str):
                raise self.fail(f"{name}() needs a string literal")
            return _Compiled(self._string_fn(name, arg.value, base_fn), boolean)
        raise self.fail(f"unsupported function {name}()")

    @staticmethod
    def _collection_fn(name: str, base_fn: Step) -> Step:
        def run(items: list[Item], root: Any) -> list[Item]:
            found = base_fn(items, root)
            if name == "exists":
                return [(_BOOL_TAG, bool(found))]
            if name == "empty":
                return [(_BOOL_TAG, not found)]
            truth = _truth(found)
            return [] if truth is None else [(_BOOL_TAG, not truth)]

        return run

    @staticmethod
    def _string_fn(name: str, arg: str, base_fn: Step) -> Step:
        pattern = re.compile(arg, re.DOTALL) if name == "matches" else None

        def test(text: str) -> bool:
            if pattern is not None:
                return pattern.search(text) is not None
            if name == "startsWith":
                return text.startswith(arg)
            if name == "endsWith":
                return text.endswith(arg)
            return arg in text

        def run(items: list[Item], root: Any) -> list[Item]:
            found = base_fn(items, root)
            if len(found) != 1 or not isinstance(found[0][1], str):
                return []
            return [(_BOOL_TAG, test(found[0][1]))]

        return run

    def binary(self, node: Binary, ctx: Static) -> _Compiled:
        op = node.op
        if op == "as":
            assert isinstance(node.right, Ident)
            return self.cast(node.left, node.right.name, ctx)
        if op not in ("|", "and", "or", "=", "!="):
            raise self.fail(f"unsupported operator {op!r}")
        left = self.compile(node.left, ctx)
        right = self.compile(node.right, ctx)
        lf, rf = left.fn, right.fn
        if op == "|":

            def union(items: list[Item], root: Any) -> list[Item]:
                return _dedupe(lf(items, root) + rf(items, root))

            return _Compiled(union, left.out | right.out)
        boolean = frozenset({(_BOOL_TAG, None)})
        if op in ("and", "or"):
            is_and = op == "and"

            def logic(items: list[Item], root: Any) -> list[Item]:
                a = _truth(lf(items, root))
                if a is (not is_and):  # false and ... / true or ...
                    return [(_BOOL_TAG, a)]
                b = _truth(rf(items, root))
                if b is (not is_and):
                    return [(_BOOL_TAG, b)]
                if a is None or b is None:
                    return []
                return [(_BOOL_TAG, is_and)]

            return _Compiled(logic, boolean)
        if op in ("=", "!="):
            negate = op == "!="

            def equality(items: list[Item], root: Any) -> list[Item]:
                a, b = lf(items, root), rf(items, root)
                if not a or not b:
                    return []
                same = len(a) == len(b) and all(
                    _values_equal(x[1], y[1]) for x, y in zip(a, b, strict=True)
                )
                return [(_BOOL_TAG, same != negate)]

            return _Compiled(equality, boolean)
        raise self.fail(f"unsupported operator {op!r}")


@dataclass(frozen=True, slots=True)
class CompiledPath:
    """A compiled expression rooted at a resource of root_type."""

    expression: str
    root_type: str
    result: Static
    step: Step

    def __call__(self, resource: Any) -> list[Item]:
        """The (type tag, JSON value) pairs the expression selects in resource."""
        return self.step([(self.root_type, resource)], resource)

    @property
    def result_types(self) -> frozenset[str]:
        """Type tags the expression can yield."""
        return frozenset(tag for tag, _ in self.result)

    @property
    def result_elements(self) -> frozenset[str]:
        """Element definition paths the values come from (for target profiles)."""
        return frozenset(path for _, path in self.result if path is not None)


def compile_expression(expression: str, root_type: str, model: Model) -> CompiledPath:
    """Compile an expression evaluated on a resource of root_type; CompileError if outside the
    subset."""
    compiler = _Compiler(model, expression, root_type)
    ctx: Static = frozenset({(root_type, None)})
    compiled = compiler.compile(parse(expression), ctx)
    return CompiledPath(expression, root_type, compiled.out, compiled.fn)


def compile_relative(
    expression: str, context: Static, root_type: str, model: Model
) -> tuple[Step, Static]:
    """Compile an expression evaluated on items of the given static types (composite
    components, evaluated on each value of the composite's own expression)."""
    compiler = _Compiler(model, expression, root_type)
    compiled = compiler.compile(parse(expression), context)
    return compiled.fn, compiled.out


@dataclass(frozen=True, slots=True)
class CompiledComposite:
    """A composite parameter: contexts from its expression, then each component on each."""

    base: CompiledPath
    components: tuple[Step, ...]

    def __call__(self, resource: Any) -> list[tuple[list[Item], ...]]:
        """One tuple per context value: the values of each component within it."""
        return [
            tuple(component([item], resource) for component in self.components)
            for item in self.base(resource)
        ]


def compile_composite(
    expression: str, components: Sequence[str], root_type: str, model: Model
) -> CompiledComposite:
    """Compile a composite parameter's expression and its components' relative expressions."""
    base = compile_expression(expression, root_type, model)
    steps = tuple(compile_relative(c, base.result, root_type, model)[0] for c in components)
    return CompiledComposite(base, steps)


@dataclass(frozen=True, slots=True)
class TableModel:
    """A Model over plain tables (what schemas/fhir/search_parameters.json holds)."""

    elements: Mapping[str, ElementInfo]
    parents: Mapping[str, str]

    def element(self, path: str) -> ElementInfo | None:
        """The element at path, if known."""
        return self.elements.get(path)

    def parent(self, type_name: str) -> str | None:
        """The base type of type_name, if it specialises another type."""
        return self.parents.get(type_name)
