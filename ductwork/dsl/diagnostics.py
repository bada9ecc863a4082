"""Located compile errors rendered like a compiler: `path:line:col: message`, source, caret."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from ductwork.util import suggest

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Diagnostic:
    """One problem at one place in one file. `line`/`col` are 1-based."""

    path: str
    line: int  # 0 (with col 0) when the problem is the whole file or folder
    col: int
    message: str
    hint: str | None = None
    source: str | None = None  # the offending source line, for the caret display
    length: int = 1  # how many characters to underline
    # A warning is printed and counted but does not fail `ductwork validate` (unless --strict)
    # nor stop a product from loading: the spec runs, maybe not as meant.
    severity: str = ERROR

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}:{self.col}" if self.line else self.path

    @property
    def text(self) -> str:
        """The message, with "warning: " in front of a warning (errors are the default)."""
        return self.message if self.is_error else f"{self.severity}: {self.message}"

    def short(self) -> str:
        """`line:col: message`, the form the broken-spec catalogue pins."""
        return f"{self.line}:{self.col}: {self.text}"

    def render(self) -> str:
        out = [f"{self.location}: {self.text}"]
        if self.source is not None and self.source.strip():
            gutter = f"{self.line:>4} | "
            text = self.source.replace("\t", " ")
            out.append(gutter + text)
            width = max(1, min(self.length, len(text) - self.col + 1))
            pad = " " * (len(gutter) - 2) + "| " + " " * (self.col - 1)
            out.append(pad + "^" + "~" * (width - 1))
        if self.hint:
            out.append(f"     = hint: {self.hint}")
        return "\n".join(out)

    __str__ = render

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "line": self.line, "col": self.col,
            "message": self.message, "hint": self.hint, "severity": self.severity,
        }


def did_you_mean(name: object, candidates: Iterable[str]) -> str | None:
    """The "did you mean 'x'?" hint of a Diagnostic, or None (no hint) when nothing is close."""
    return suggest.did_you_mean(name, candidates) or None


def known(candidates: Iterable[str]) -> str:
    """A short list of valid names for a message: "known: a, b, c"."""
    pool = sorted(set(candidates))
    if not pool:
        return "none declared"
    shown = ", ".join(pool[:12])
    return shown + (f", ... ({len(pool)} in all)" if len(pool) > 12 else "")


def sort_key(d: Diagnostic) -> tuple[str, int, int, str]:
    return (d.path, d.line, d.col, d.message)


def errors(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """The diagnostics that make a spec invalid (warnings left out)."""
    return [d for d in diagnostics if d.is_error]


def as_error(d: Diagnostic) -> Diagnostic:
    """A warning promoted to an error (`ductwork validate --strict`)."""
    return replace(d, severity=ERROR)
