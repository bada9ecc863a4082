"""Text functions: case, trimming, splitting and joining, padding, slugs, encodings."""

from __future__ import annotations

from typing import Any

from ductwork.dsl.expr.functions.registry import ArgError, article, cap_items, cap_text, fn
from ductwork.dsl.expr.runtime import MAX_TEXT, Fail, to_text, type_name
from ductwork.dsl.expr.runtime import contains as _in

G = "text"


@fn("upper(text: string) -> string", "the text in upper case", group=G,
    example="upper('ada')")
def _upper(v: str) -> str:
    return v.upper()


@fn("lower(text: string) -> string", "the text in lower case", group=G,
    example="lower('ADA')")
def _lower(v: str) -> str:
    return v.lower()


@fn("trim(text: string, [chars: string]) -> string",
    "the text without leading/trailing whitespace (or the given characters)", group=G,
    example="trim('  hi  ')")
def _trim(v: str, chars: str | None = None) -> str:
    return v.strip(chars)


def _non_empty(what: str) -> Any:
    def check(v: Any) -> None:
        if v == "":
            raise ArgError(f"{what} must not be empty")

    return check


@fn("split(text: string, [separator: string], [limit: integer]) -> list",
    "a list of parts (split on runs of whitespace by default); at most `limit` splits",
    group=G, example="split('a,b,c', ',')", checks={"separator": _non_empty("separator")})
def _split(v: str, sep: str | None = None, limit: int | None = None) -> list[str]:
    return cap_items(v.split(sep, -1 if limit is None else limit))


@fn("join(list: list, [separator: string]) -> string",
    "the items as text joined by separator (default ','); null, booleans, lists and maps "
    "are written as JSON", group=G, example="join(['a', 1, true], '-')")
def _join(items: list[Any], sep: str | None = None) -> str:
    try:
        return cap_text(("," if sep is None else sep).join(to_text(x, 0) for x in items))
    except Fail as exc:
        raise ArgError(exc.message) from None


@fn("replace(text: string, old: string, new: string) -> string",
    "the text with every `old` replaced by `new`", group=G,
    example="replace('a-b-c', '-', '+')")
def _replace(v: str, old: str, new: str) -> str:
    count = len(v) + 1 if old == "" else v.count(old)
    if len(v) + count * (len(new) - len(old)) > MAX_TEXT:
        raise ArgError(f"result would be longer than {MAX_TEXT} characters")
    return v.replace(old, new)


@fn("starts_with(text: string, prefix: string) -> boolean", "whether the text starts with "
    "prefix", group=G, example="starts_with('invoice-7', 'invoice-')")
def _starts_with(v: str, prefix: str) -> bool:
    return v.startswith(prefix)


@fn("ends_with(text: string, suffix: string) -> boolean", "whether the text ends with suffix",
    group=G, example="ends_with('report.pdf', '.pdf')")
def _ends_with(v: str, suffix: str) -> bool:
    return v.endswith(suffix)


@fn("contains(container: list|map|string, item: any) -> boolean",
    "whether a list holds item, a map has the key item, or a string has the substring item",
    group=G, example="contains('hello', 'ell')")
def _contains(container: Any, item: Any) -> bool:
    if isinstance(container, str) and not isinstance(item, str):
        raise ArgError(f"item must be a string to search a string, not {article(type_name(item))}")
    try:
        return _in(container, item, 0)
    except Fail as exc:
        raise ArgError(exc.message.replace("'in'", "contains()")) from None


