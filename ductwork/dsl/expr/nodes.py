"""The small typed AST of `${ ... }` expressions (what the Lark transformer produces)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Deeper trees are refused at parse time so that compiling and evaluating (both recursive)
# can never hit Python's recursion limit.
MAX_DEPTH = 100


@dataclass(frozen=True, slots=True)
class Node:
    """Base of every node; `pos` is the 0-based offset of the node's anchor in the source."""

    pos: int

    def children(self) -> tuple[Node, ...]:
        return ()


@dataclass(frozen=True, slots=True)
class Const(Node):
    value: Any


@dataclass(frozen=True, slots=True)
class ListNode(Node):
    items: tuple[Node, ...]

    def children(self) -> tuple[Node, ...]:
        return self.items


@dataclass(frozen=True, slots=True)
class MapNode(Node):
    keys: tuple[str, ...]
    values: tuple[Node, ...]

    def children(self) -> tuple[Node, ...]:
        return self.values


@dataclass(frozen=True, slots=True)
class Name(Node):
    """A root name: ctx, steps, state, item, ... (anchor: the name)."""

    name: str


@dataclass(frozen=True, slots=True)
class Field(Node):
    """`obj.name` (anchor: the first character of the name, after the dot)."""

    obj: Node
    name: str

    def children(self) -> tuple[Node, ...]:
        return (self.obj,)


@dataclass(frozen=True, slots=True)
class Index(Node):
    """`obj[key]` (anchor: the '[')."""

    obj: Node
    key: Node

    def children(self) -> tuple[Node, ...]:
        return (self.obj, self.key)


@dataclass(frozen=True, slots=True)
class Call(Node):
    """`name(args)` or `transform.name(args)`; `name` is without the `transform.` prefix."""

    name: str
    args: tuple[Node, ...]
    written: str  # as the user wrote it, for messages

    def children(self) -> tuple[Node, ...]:
        return self.args


@dataclass(frozen=True, slots=True)
class Unary(Node):
    op: str  # "-", "+", "not"
    operand: Node

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)


@dataclass(frozen=True, slots=True)
class Binary(Node):
    op: str  # "+", "-", "*", "/", "//", "%"
    left: Node
    right: Node

    def children(self) -> tuple[Node, ...]:
        return (self.left, self.right)


@dataclass(frozen=True, slots=True)
class Compare(Node):
    op: str  # "==", "!=", "<", "<=", ">", ">=", "in", "not in"
    left: Node
    right: Node

    def children(self) -> tuple[Node, ...]:
        return (self.left, self.right)


@dataclass(frozen=True, slots=True)
class BoolOp(Node):
    op: str  # "and", "or"
    left: Node
    right: Node

    def children(self) -> tuple[Node, ...]:
        return (self.left, self.right)


@dataclass(frozen=True, slots=True)
class Cond(Node):
    """`then if cond else other` (anchor: the `if`)."""

    cond: Node
    then: Node
    other: Node

    def children(self) -> tuple[Node, ...]:
        return (self.then, self.cond, self.other)


@dataclass(frozen=True, slots=True)
class Reference:
    """A path an expression reads: `steps.create-user.id` -> ("steps", ("create-user", "id")).

    The path stops at the first index that is not a literal (`steps[x].id` -> ("steps", ())).
    `column` is the 1-based column of the root; `columns` has one column per path segment.
    """

    root: str
    path: tuple[str | int, ...]
    column: int
    columns: tuple[int, ...] = ()


def depth_and_size(node: Node) -> tuple[int, int]:
    """(depth, number of nodes) of the tree, computed without recursion (the tree may be
    adversarial)."""
    best, count, stack = 0, 0, [(node, 1)]
    while stack:
        n, d = stack.pop()
        count += 1
        best = max(best, d)
        stack.extend((c, d + 1) for c in n.children())
    return best, count


def path_of(node: Node) -> tuple[str, tuple[str | int, ...], tuple[int, ...]] | None:
    """(root, path, segment columns) if `node` is a pure path (names, fields, literal indexes)."""
    keys: list[str | int] = []
    cols: list[int] = []
    while True:
        if isinstance(node, Name):
            keys.reverse()
            cols.reverse()
            return node.name, tuple(keys), tuple(cols)
        if isinstance(node, Field):
            keys.append(node.name)
            cols.append(node.pos + 1)
            node = node.obj
        elif (
            isinstance(node, Index)
            and isinstance(node.key, Const)
            and type(node.key.value) in (str, int)
        ):
            keys.append(node.key.value)
            cols.append(node.key.pos + 1)
            node = node.obj
        else:
            return None


def references(root: Node) -> list[Reference]:
    """Every maximal path in the tree, in source order."""
    out: list[Reference] = []
    stack = [root]
    while stack:
        node = stack.pop()
        found = path_of(node)
        if found is not None:
            name, path, cols = found
            base = node
            while not isinstance(base, Name):
                assert isinstance(base, Field | Index)
                base = base.obj
            out.append(Reference(name, path, base.pos + 1, cols))
            continue
        if isinstance(node, Field | Index):
            # Walk down the chain: the literal-index part may still be a path prefix.
            stack.append(node.obj)
            if isinstance(node, Index):
                stack.append(node.key)
            continue
        stack.extend(node.children())
    out.sort(key=lambda r: r.column)
    return out


def calls(root: Node) -> list[tuple[str, int]]:
    """(function name, 1-based column) of every call, in source order."""
    out: list[tuple[str, int]] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, Call):
            out.append((node.name, node.pos + 1))
        stack.extend(node.children())
    out.sort(key=lambda c: c[1])
    return out
