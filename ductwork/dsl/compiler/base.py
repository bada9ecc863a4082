"""The compiler's shared state and reporting: every phase reports through `fail`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ductwork.dsl import plan as p
from ductwork.dsl import vocabulary as v
from ductwork.dsl.diagnostics import Diagnostic
from ductwork.dsl.expr.checker import ExprChecker
from ductwork.dsl.loader import DataPath, Document
from ductwork.util.durations import parse_ms

# Bodies that must carry a tag: their result is recorded under it.
NEEDS_TAG = v.TASKS | {"workflow"}


def duration_ms(value: Any) -> int | None:
    """Milliseconds of a static duration ("5s", 250), None if it is not one."""
    ms = parse_ms(value)
    return None if ms is None else int(ms)


@dataclass
class CompilerBase:
    """One workflow document being compiled against its product, and what was found."""

    doc: Document
    product: p.ProductSpec
    workflows: frozenset[str] = frozenset()  # tags of the product's workflows (child checks)
    expected_tag: str | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.exprs = ExprChecker(self._report_expr, document=self.doc.data, product=self.product)
        self.signals: dict[str, Any] | None = None

    # -- reporting --------------------------------------------------------------------------

    def fail(self, path: DataPath, message: str, hint: str | None = None, *, key: bool = False,
             offset: int | None = None, length: int = 1) -> None:
        line, col = self.doc.locate(path, key=key, offset=offset)
        if key and path and length == 1:
            length = len(str(path[-1]))
        elif length == 1 and offset is None:
            length = self.doc.width(path)
        self.diagnostics.append(Diagnostic(self.doc.path, line, col, message, hint,
                                           self.doc.source_line(line), length))

    def _report_expr(self, path: DataPath, offset: int | None, message: str,
                     hint: str | None, length: int) -> None:
        self.fail(path, message, hint, offset=offset, length=length)

    def loc(self, path: DataPath) -> p.Location:
        line, col = self.doc.locate(path)
        return p.Location(self.doc.path, line, col)
