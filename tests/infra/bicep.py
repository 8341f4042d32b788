"""A parse-level model of the Bicep files, read with the tree-sitter Bicep grammar.

The Bicep CLI cannot be installed here (it downloads a binary), so nothing is compiled. Instead
the declarations are read from the syntax tree: parameters with their decorators and defaults,
modules with the params they pass, resources with their bodies, outputs. Tests use this to check
how the files fit together (a module path resolves, the params passed are the params declared,
every ``x.outputs.y`` exists), which is what the compiler would refuse first.

Values are kept as source text; object bodies become nested dicts of source text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import tree_sitter_bicep
from tree_sitter import Language, Node, Parser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN = INFRA / "main.bicep"

OUTPUT_REFERENCE = re.compile(r"\b([A-Za-z_]\w*)\.outputs\.([A-Za-z_]\w*)\b")


def _parser() -> Parser:
    return Parser(Language(tree_sitter_bicep.language()))


def syntax_errors(source: bytes) -> list[str]:
    """Every ERROR or MISSING node, as ``line N: type`` (empty for a file that parses)."""
    errors: list[str] = []
    stack = [_parser().parse(source).root_node]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            errors.append(f"line {node.start_point[0] + 1}: {node.type}")
        stack.extend(node.children)
    return errors


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    default: str | None  # source text; None: the caller must pass it
    decorators: dict[str, str]  # decorator name -> its argument source text, e.g. {"secure": ""}

    @property
    def required(self) -> bool:
        return self.default is None

    @property
    def secure(self) -> bool:
        return "secure" in self.decorators


@dataclass(frozen=True)
class Module:
    symbol: str
    path: str  # as written, relative to the declaring file
    body: dict[str, Any]
    params: dict[str, str]
    depends_on: tuple[str, ...]
    condition: str | None = None  # `= if (<condition>) {...}`: the condition's source text


@dataclass(frozen=True)
class Resource:
    symbol: str
    type: str  # 'Namespace/type@api-version'
    existing: bool
    body: dict[str, Any]
    looped: bool  # declared with [for ...]


@dataclass
class BicepFile:
    path: Path
    text: str
    params: dict[str, Param] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    modules: dict[str, Module] = field(default_factory=dict)
    resources: dict[str, Resource] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)  # name -> value source text

    def module_file(self, module: Module) -> BicepFile:
        return load(self.path.parent / module.path)

    def output_references(self) -> set[tuple[str, str]]:
        """Every ``symbol.outputs.name`` this file reads."""
        return set(OUTPUT_REFERENCE.findall(self.text))


def _text(source: bytes, node: Node) -> str:
    return source[node.start_byte : node.end_byte].decode()


def _string(source: bytes, node: Node) -> str:
    """The content of a plain string literal (no interpolation expected)."""
    return _text(source, node).strip("'")


def _object(source: bytes, node: Node) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for prop in node.children:
        if prop.type != "object_property":
            continue
        key_node, value_node = prop.children[0], prop.children[-1]
        key = _string(source, key_node) if key_node.type == "string" else _text(source, key_node)
        result[key] = (
            _object(source, value_node)
            if value_node.type == "object"
            else _text(source, value_node)
        )
    return result


def _first(node: Node, node_type: str) -> Node | None:
    """The first descendant of ``node_type`` in document order (breadth first)."""
    queue = list(node.children)
    while queue:
        child = queue.pop(0)
        if child.type == node_type:
            return child
        queue.extend(child.children)
    return None


def _decorators(source: bytes, node: Node | None) -> dict[str, str]:
    if node is None or node.type != "decorators":
        return {}
    found: dict[str, str] = {}
    for decorator in node.children:
        call = _first(decorator, "call_expression")
        if call is None:
            continue
        name = call.child_by_field_name("function")
        args = call.child_by_field_name("arguments")
        if name is not None:
            found[_text(source, name)] = _text(source, args)[1:-1] if args is not None else ""
    return found


@cache
def load(path: Path) -> BicepFile:
    path = path.resolve()
    source = path.read_bytes()
    root = _parser().parse(source).root_node
    parsed = BicepFile(path=path, text=source.decode())
    previous: Node | None = None
    for node in root.children:
        named = [c for c in node.children if c.type == "identifier"]
        if node.type == "parameter_declaration":
            ident, type_node = named[0], node.children[2]
            has_default = any(c.type == "=" for c in node.children)
            parsed.params[_text(source, ident)] = Param(
                name=_text(source, ident),
                type=_text(source, type_node),
                default=_text(source, node.children[-1]) if has_default else None,
                decorators=_decorators(source, previous),
            )
        elif node.type == "variable_declaration":
            parsed.variables[_text(source, named[0])] = _text(source, node.children[-1])
        elif node.type == "module_declaration":
            symbol = _text(source, named[0])
            path_node = next(c for c in node.children if c.type == "string")
            value = node.children[-1]
            condition: str | None = None
            if value.type == "if_statement":  # module x '...' = if (cond) { ... }
                test = next(c for c in value.children if c.type == "parenthesized_expression")
                condition = _text(source, test)[1:-1].strip()
                value = next(c for c in value.children if c.type == "object")
            body = _object(source, value)
            params = body.get("params", {})
            depends = re.findall(r"[A-Za-z_]\w*", body.get("dependsOn", "")[1:-1])
            parsed.modules[symbol] = Module(
                symbol=symbol,
                path=_string(source, path_node),
                body=body,
                params=params if isinstance(params, dict) else {},
                depends_on=tuple(depends),
                condition=condition,
            )
        elif node.type == "resource_declaration":
            symbol = _text(source, named[0])
            type_node = next(c for c in node.children if c.type == "string")
            value = node.children[-1]
            looped = value.type == "for_statement"
            obj = _first(value, "object") if looped else value
            parsed.resources[symbol] = Resource(
                symbol=symbol,
                type=_string(source, type_node),
                existing=any(c.type == "existing" for c in node.children),
                body=_object(source, obj) if obj is not None else {},
                looped=looped,
            )
        elif node.type == "output_declaration":
            parsed.outputs[_text(source, named[0])] = _text(source, node.children[-1])
        if node.type != "comment":
            previous = node
    return parsed


def all_files() -> list[BicepFile]:
    return [load(p) for p in sorted(INFRA.rglob("*.bicep"))]
