"""Raw SQL with :name parameters: find them, skipping literals, comments, casts and $$ quotes."""

from __future__ import annotations

import re

_TOKEN = re.compile(
    r"""(?P<str>[eE]'(?:\\.|''|[^'\\])*'|'(?:''|[^'])*')
      | (?P<ident>"(?:""|[^"])*")
      | (?P<line>--[^\n]*)
      | (?P<block>/\*.*?\*/)
      | (?P<dollar>\$(?P<tag>[A-Za-z_][A-Za-z0-9_]*|)\$.*?\$(?P=tag)\$)
      | (?P<cast>::)
      | (?P<param>(?<![A-Za-z0-9_]):(?P<name>[A-Za-z_][A-Za-z0-9_]*))
      | (?P<pct>%)
    """,
    re.VERBOSE | re.DOTALL,
)


def scan_params(sql: str, placeholder: str, escape_percent: bool) -> tuple[str, list[str]]:
    """`sql` with each :name replaced by `placeholder`, and the names in order of use."""
    out: list[str] = []
    names: list[str] = []
    pos = 0
    for m in _TOKEN.finditer(sql):
        out.append(sql[pos:m.start()])
        if m.group("param") is not None:
            names.append(m.group("name"))
            out.append(placeholder)
        else:
            out.append(m.group(0).replace("%", "%%") if escape_percent else m.group(0))
        pos = m.end()
    rest = sql[pos:]
    out.append(rest.replace("%", "%%") if escape_percent else rest)
    return "".join(out), names


def named_params(sql: str) -> list[str]:
    """The distinct :name parameters of a statement, in order (literals and comments skipped)."""
    seen: list[str] = []
    for n in scan_params(sql, "?", False)[1]:
        if n not in seen:
            seen.append(n)
    return seen
