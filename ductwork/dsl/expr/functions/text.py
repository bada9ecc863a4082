"""Text functions: case, trimming, splitting and joining, padding, slugs, encodings."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import unicodedata
import urllib.parse
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


@fn("capitalize(text: string) -> string",
    "the text with its first character in upper case (the rest unchanged)", group=G,
    example="capitalize('ada lovelace')")
def _capitalize(v: str) -> str:
    return v[:1].upper() + v[1:]


_WORD = re.compile(r"\S+")


@fn("title(text: string) -> string",
    "every whitespace-separated word with a capital first letter and the rest in lower case",
    group=G, example="title('ada LOVELACE')")
def _title(v: str) -> str:
    return _WORD.sub(lambda m: m[0][:1].upper() + m[0][1:].lower(), v)


_NOT_SLUG = re.compile(r"[^a-z0-9]+")


@fn("slug(text: string) -> string",
    "lower-case ASCII letters and digits joined by '-' (accents dropped), for ids and URLs",
    group=G, example="slug('Crème Brûlée: 2 pots!')")
def _slug(v: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", v).encode("ascii", "ignore").decode()
    return _NOT_SLUG.sub("-", ascii_text.lower()).strip("-")


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


def _pad(v: Any, width: int, fill: str | None, at_start: bool) -> str:
    s = to_text(v, 0)
    if width > MAX_TEXT:
        raise ArgError(f"width must be at most {MAX_TEXT}")
    need = width - len(s)
    if need <= 0:
        return s
    f = " " if fill is None else fill
    pad = (f * (need // len(f) + 1))[:need]
    return pad + s if at_start else s + pad


@fn("pad_start(text: string|number, width: integer, [fill: string]) -> string",
    "the text (or number) padded on the left with fill (default ' ') to width characters",
    group=G, example="pad_start(7, 3, '0')", checks={"fill": _non_empty("fill")})
def _pad_start(v: Any, width: int, fill: str | None = None) -> str:
    return _pad(v, width, fill, True)


@fn("pad_end(text: string|number, width: integer, [fill: string]) -> string",
    "the text (or number) padded on the right with fill (default ' ') to width characters",
    group=G, example="pad_end('ab', 4, '.')", checks={"fill": _non_empty("fill")})
def _pad_end(v: Any, width: int, fill: str | None = None) -> str:
    return _pad(v, width, fill, False)


def _not_negative(what: str) -> Any:
    def check(v: Any) -> None:
        if v < 0:
            raise ArgError(f"{what} must not be negative")

    return check


@fn("truncate(text: string, length: integer, [suffix: string]) -> string",
    "the text cut to at most length characters, ending with suffix (default '...') when cut",
    group=G, example="truncate('a long sentence', 8)", checks={"length": _not_negative("length")})
def _truncate(v: str, length: int, suffix: str | None = None) -> str:
    if len(v) <= length:
        return v
    end = "..." if suffix is None else suffix
    return (v[: max(length - len(end), 0)] + end)[:length]


@fn("url_encode(text: string) -> string",
    "the text percent-encoded for a URL query value or path segment", group=G,
    example="url_encode('a b&c')")
def _url_encode(v: str) -> str:
    return cap_text(urllib.parse.quote(v, safe=""))


@fn("base64_encode(text: string) -> string", "the UTF-8 bytes of the text in base64",
    group=G, example="base64_encode('hi')")
def _b64encode(v: str) -> str:
    return cap_text(base64.b64encode(v.encode()).decode("ascii"))


@fn("base64_decode(text: string) -> string", "the text that base64 encodes (UTF-8)",
    group=G, example="base64_decode('aGk=')")
def _b64decode(v: str) -> str:
    try:
        return base64.b64decode(v.encode("ascii"), validate=True).decode()
    except (binascii.Error, UnicodeError, ValueError):
        raise ArgError("text is not base64 of UTF-8 text") from None


@fn("sha256(text: string) -> string", "the SHA-256 digest of the UTF-8 text, in hex "
    "(e.g. for idempotency keys)", group=G, example="sha256('order-7')")
def _sha256(v: str) -> str:
    return hashlib.sha256(v.encode()).hexdigest()
