"""Data-work functions: results, clear errors, and what `ductwork validate` finds early."""

from __future__ import annotations

import datetime as dt
import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from ductwork.dsl import plan as p
from ductwork.dsl.compiler import compile_workflow
from ductwork.dsl.expr.expressions import FUNCTIONS, parse
from ductwork.dsl.loader import load_text
from ductwork.dsl.product import compile_product
from ductwork.errors import ExpressionError
from ductwork.interpreter.transform import Transform

ORDERS = [
    {"id": "o1", "total": 20, "status": "paid", "vip": True, "customer": {"country": "NO"},
     "at": "2024-05-03T10:00:00Z"},
    {"id": "o2", "total": 5.5, "status": "open", "vip": False, "customer": {"country": "IT"},
     "at": "2024-05-01T09:00:00Z"},
    {"id": "o3", "total": 12, "status": "paid", "customer": {"country": "NO"},
     "at": "2024-05-02T08:30:00Z"},
]
SCOPE = {"ctx": {"input": {"orders": ORDERS, "name": "  ada LOVELACE ", "n": 7}}}


def ev(text: str) -> Any:
    return parse(text).evaluate(SCOPE)


@pytest.mark.parametrize(("text", "expected"), [
    # aggregates
    ("sum(ctx.input.orders, 'total')", 37.5),
    ("sum([1, 2, 3])", 6),
    ("avg(ctx.input.orders, 'total')", 12.5),
    ("avg([2, 4])", 3),
    ("min(ctx.input.orders, 'total')", 5.5),
    ("max(ctx.input.orders, 'at')", "2024-05-03T10:00:00Z"),
    ("count(ctx.input.orders, 'status', 'paid')", 2),
    ("count(ctx.input.orders, 'vip')", 1),
    ("count(ctx.input.orders)", 3),
    # by field
    ("pluck(ctx.input.orders, 'id')", ["o1", "o2", "o3"]),
    ("map(ctx.input.orders, 'customer.country')", ["NO", "IT", "NO"]),
    ("pluck(ctx.input.orders, 'vip')", [True, False, None]),
    ("pluck(filter(ctx.input.orders, 'status', 'paid'), 'id')", ["o1", "o3"]),
    ("pluck(filter(ctx.input.orders, 'vip'), 'id')", ["o1"]),
    ("filter([0, 1, '', 'a', null, [], [0]])", [1, "a", [0]]),
    ("find(ctx.input.orders, 'id', 'o2').total", 5.5),
    ("find(ctx.input.orders, 'id', 'zz')", None),
    ("unique(pluck(ctx.input.orders, 'status'))", ["paid", "open"]),
    ("pluck(unique(ctx.input.orders, 'customer.country'), 'id')", ["o1", "o2"]),
    ("unique([1, true, 1, 'a', 'a'])", [1, True, "a"]),
    ("pluck(sort(ctx.input.orders, 'total'), 'id')", ["o2", "o3", "o1"]),
    ("pluck(sort_by(ctx.input.orders, 'at', 'desc'), 'id')", ["o1", "o3", "o2"]),
    ("sort([3, null, 1])", [1, 3, None]),
    ("sort(['b', 'a'], null, 'desc')", ["b", "a"]),
    ("keys(group_by(ctx.input.orders, 'status'))", ["paid", "open"]),
    ("size(group_by(ctx.input.orders, 'customer.country').NO)", 2),
    ("group_by([{k: null}, {k: 1}], 'k')", {"null": [{"k": None}], "1": [{"k": 1}]}),
    # positions
    ("first(ctx.input.orders).id", "o1"),
    ("last([1, 2, 3])", 3),
    ("first([])", None),
    ("reverse('abc')", "cba"),
    ("flatten([[1], [2, [3]], 4])", [1, 2, [3], 4]),
    ("slice([1, 2, 3, 4], 1, 3)", [2, 3]),
    ("substring('workflow', -4)", "flow"),
    ("index_of(pluck(ctx.input.orders, 'id'), 'o3')", 2),
    ("index_of('abc', 'z')", -1),
    # maps
    ("pick(first(ctx.input.orders), ['id', 'total'])", {"id": "o1", "total": 20}),
    ("keys(omit({a: 1, b: 2}, ['a']))", ["b"]),
    ("get(ctx.input, 'orders.1.customer.country')", "IT"),
    ("get(ctx.input, 'orders.9.id', 'none')", "none"),
    # numbers
    ("floor(-2.5)", -3),
    ("ceil(2.01)", 3),
    # text
    ("capitalize('ada')", "Ada"),
    ("title(trim(ctx.input.name))", "Ada Lovelace"),
    ("slug('Hello, World! 2024')", "hello-world-2024"),
    ("pad_start(ctx.input.n, 4, '0')", "0007"),
    ("pad_end('ab', 5, '-=')", "ab-=-"),
    ("truncate('abcdefghij', 6)", "abc..."),
    ("truncate('abcdefghij', 6, '')", "abcdef"),
    ("url_encode('x y/z')", "x%20y%2Fz"),
    ("base64_decode(base64_encode('héllo'))", "héllo"),
    ("size(sha256('x'))", 64),
    # dates
    ("add('2024-05-01', '1d')", "2024-05-02"),
    ("add('2024-05-01', '-1w')", "2024-04-24"),
    ("add('2024-05-01', '36h')", "2024-05-02T12:00:00.000Z"),
    ("add('2024-05-01T10:00:00+02:00', '30m')", "2024-05-01T10:30:00.000+02:00"),
    ("add(0, 1500)", "1970-01-01T00:00:01.500Z"),
    ("add_months('2024-01-31', 1)", "2024-02-29"),
    ("add_months('2024-05-15T08:00:00Z', -12)", "2023-05-15T08:00:00.000Z"),
    ("diff('2024-05-03', '2024-05-01', 'd')", 2),
    ("diff('2024-05-01T00:00:00Z', '2024-05-01T01:30:00Z', 'h')", -1),
    ("diff('2024-05-01T00:00:01.5Z', '2024-05-01T00:00:00Z')", 1500),
    ("diff(max(ctx.input.orders, 'at'), min(ctx.input.orders, 'at'), 'h')", 49),
    ("timestamp('1970-01-02')", 86_400_000),
    ("format_date(timestamp('2024-05-01T12:00:00Z'))", "2024-05-01T12:00:00.000Z"),
    ("format_date('2024-05-01T12:00:00Z', 'ddd D MMM YYYY, h:mm A', 'America/New_York')",
     "Wed 1 May 2024, 8:00 AM"),
    ("format_date('2024-05-01', '[week of] MMMM D')", "week of May 1"),
    ("parse_date('05/01/2024 08:00 PM', 'MM/DD/YYYY hh:mm A')", "2024-05-01T20:00:00.000Z"),
    ("parse_date('2024-05-01 20:00 +0200', 'YYYY-MM-DD HH:mm ZZ')",
     "2024-05-01T20:00:00.000+02:00"),
    ("parse_date('1/5/24', 'D/M/YY')", "2024-05-01"),
    ("format_date(parse_date('01.05.2024', 'DD.MM.YYYY'), 'YYYY-MM-DD')", "2024-05-01"),
])
def test_results(text: str, expected: Any) -> None:
    got = ev(text)
    assert got == expected and type(got) is type(expected), got


@pytest.mark.parametrize(("text", "message"), [
    ("sum(ctx.input.orders, 'totl')", "sum(): item 0 has no field 'totl' (fields: id, total, "
     "status, vip, customer, at)"),
    ("sum(ctx.input.orders, 'status')", "sum(): item 0 field 'status' is a string, not a number"),
    ("avg([])", "avg(): avg() of an empty list"),
    ("pluck([1, 2], 'id')", "pluck(): item 0 is a number, not a map with field 'id'"),
    ("filter(ctx.input.orders, 3)", "filter(): field must be a string, not a number"),
    ("sort([1, 'a'])", "sort(): cannot sort a mix of number and string values: they must be all "
     "numbers, all strings or all dates"),
    ("sort([1], null, 'up')", "sort(): order must be one of 'asc', 'desc', not 'up'"),
    ("group_by(ctx.input.orders)", "group_by() takes 2 arguments, got 1: group_by(list, field)"),
    ("first('abc')", "first(): list must be a list, not a string"),
    ("slice('abc', '1')", "slice(): start must be a whole number, not a string"),
    ("pick({a: 1}, 'a')", "pick(): keys must be a list, not a string"),
    ("get(1, 'a')", "get(): value must be a map or a list, not a number"),
    ("floor('2')", "floor(): number must be a number, not a string"),
    ("pad_start('a', 2.5)", "pad_start(): width must be a whole number, not 2.5"),
    ("pad_start('a', 3, '')", "pad_start(): fill must not be empty"),
    ("truncate('a', -1)", "truncate(): length must not be negative"),
    ("title(null)", "title(): text must be a string, not null"),
    ("base64_decode('%%%')", "base64_decode(): text is not base64 of UTF-8 text"),
    ("add('2024-05-01', '1 day')", "add(): duration must be like '1d', '2h', '30m', '-1w' or "
     "milliseconds, not '1 day'"),
    ("add('someday', '1d')", "add(): date must be ISO 8601 text, e.g. 2024-05-01T12:00:00Z"),
    ("add('9999-12-31', '1d')", "add(): the result is out of the range of dates"),
    ("add_months('2024-01-01', 0.5)", "add_months(): months must be a whole number, not 0.5"),
    ("diff('2024-05-01', '2024-04-01', 'months')", "diff(): unit must be one of 'ms', 's', 'm', "
     "'h', 'd', 'w', not 'months'"),
    ("timestamp(true)", "timestamp(): date must be a date (ISO 8601 text, epoch milliseconds or "
     "a datetime), not a boolean"),
    ("format_date(0, '%Y-%m-%d')", "format_date(): format uses tokens like 'YYYY-MM-DD HH:mm', "
     "not strftime codes like '%Y' (see docs/functions.md)"),
    ("format_date(0, 'HH', 'Mars/Olympus')", "format_date(): unknown time zone 'Mars/Olympus' "
     "(use e.g. 'Europe/Paris' or 'UTC')"),
    ("parse_date('2024-13-01', 'YYYY-MM-DD')", "parse_date(): text '2024-13-01' is not a valid "
     "date (month must be in 1..12)"),
    ("parse_date('May 2024', 'YYYY-MM')", "parse_date(): text 'May 2024' does not match format "
     "'YYYY-MM'"),
])
def test_errors_name_the_function(text: str, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        ev(text)
    assert str(info.value) == message
    assert info.value.column == 1


def test_ctx_transform_takes_python_values() -> None:
    t = Transform()
    d = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
    assert t.add(d, dt.timedelta(hours=1)) == "2024-05-01T13:00:00.000Z"
    assert t.add(dt.date(2024, 5, 1), "1d") == "2024-05-02"
    assert t.diff(d, dt.datetime(2024, 5, 1), "h") == 12  # naive means UTC
    assert t.format_date(d, "DD/MM/YYYY") == "01/05/2024"
    assert t.sort([d, d - dt.timedelta(days=1)]) == [d - dt.timedelta(days=1), d]
    assert t.sum(({"p": 1}, {"p": 2}), "p") == 3  # tuples are lists
    with pytest.raises(ExpressionError, match=r"^sum\(\): item 1 is null, not a number$"):
        t.sum([1, None])


def test_now_is_utc_text_that_date_functions_read() -> None:
    now = ev("now()")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", now)
    assert abs(ev("diff(now(), add(now(), '-1h'), 'm')") - 60) <= 1
    assert not FUNCTIONS["now"].deterministic and FUNCTIONS["add"].deterministic


# -- what validate finds -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shop() -> p.ProductSpec:
    product, problems = compile_product(load_text("product: shop\nenvs: [dev]\n", "p.yaml"))
    assert problems == [] and product is not None
    return product


def problems(shop: p.ProductSpec, body: str) -> list[str]:
    text = "workflow: w\nsteps:\n" + textwrap.indent(textwrap.dedent(body), "  ")
    _, diagnostics = compile_workflow(load_text(text, "w.yaml"), shop)
    return [d.short() for d in diagnostics]


def test_validate_reports_calls_it_can_prove_wrong(shop: p.ProductSpec) -> None:
    assert problems(shop, """
        - set:
            a: "${sum(ctx.input.items, 'price', 1)}"
            b: "${sort(ctx.input.items, 'price', 'down')}"
            c: "${format_date(ctx.input.at, '%d/%m/%Y')}"
            d: "${add(now(), '1 day')}"
            e: "${pad_start(ctx.input.n, 3, 0)}"
            f: "${upper(size(ctx.input.items))}"
            g: "${diff(now(), ctx.input.at, 'days')}"
            h: "${avrage(ctx.input.items)}"
            i: "${round(ctx.input.x, 1) + sum(ctx.input.items)}"
    """) == [
        "5:13: sum() takes 1 to 2 arguments, got 3",  # the hint: call it as sum(list, [field])
        "6:44: sort(): order must be one of 'asc', 'desc', not 'down'",
        "7:39: format_date(): format uses tokens like 'YYYY-MM-DD HH:mm', not strftime codes "
        "like '%Y' (see docs/functions.md)",
        "8:24: add(): duration must be like '1d', '2h', '30m', '-1w' or milliseconds, not "
        "'1 day'",
        "9:39: pad_start(): fill must be a string, not a number",
        "10:19: upper(): text must be a string, not a number",
        "11:39: diff(): unit must be one of 'ms', 's', 'm', 'h', 'd', 'w', not 'days'",
        "12:13: unknown function 'avrage'",
    ]


def test_validate_runs_calls_of_literals(shop: p.ProductSpec) -> None:
    assert problems(shop, """
        - set:
            a: "${parse_date('2024-02-30', 'YYYY-MM-DD')}"
            b: "${range(10, 0)}"
            c: "${upper('ok')} ${now()} ${uuid()}"
    """) == ["5:13: parse_date(): text '2024-02-30' is not a valid date (day is out of range "
             "for month)"]


# -- the reference page --------------------------------------------------------------------------

PAGE = Path(__file__).resolve().parents[3] / "docs" / "functions.md"
BEGIN, END = "<!-- reference: begin -->", "<!-- reference: end -->"
THEMES = {"text": "Text", "lists": "Lists", "dates": "Dates", "data": "Data, numbers and maps"}
# Results that differ on every call, shown as a sample.
SAMPLES = {"now": '"2024-05-01T12:00:00.000Z"', "uuid": '"3f2b8c1e-7d4a-4c2e-9b1f-0a6d5e4c3b2a"'}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def reference() -> str:
    """The reference tables of docs/functions.md, one per theme, made from FUNCTIONS."""
    out: list[str] = []
    for group, title in THEMES.items():
        out += [f"### {title}", "", "| function | what it does | example | result |",
                "|---|---|---|---|"]
        for name, info in FUNCTIONS.items():
            if info.group != group or info.primary != name:
                continue
            also = f" (also {', '.join(f'`{a}`' for a in info.aliases)})" if info.aliases else ""
            result = SAMPLES.get(name) or json.dumps(parse(info.example).evaluate({}),
                                                     ensure_ascii=False)
            out.append(f"| `{_cell(info.typed_signature())}`{also} | {_cell(info.doc)} | "
                       f"`{_cell(info.example)}` | `{_cell(result)}` |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def test_the_reference_page_is_up_to_date() -> None:
    text = PAGE.read_text(encoding="utf-8")
    current = text.split(BEGIN)[1].split(END)[0].strip() + "\n"
    assert current == reference(), "run: python -m tests.dsl.expr.test_library_functions"


if __name__ == "__main__":  # rewrite the tables of docs/functions.md
    text = PAGE.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN)
    PAGE.write_text(head + BEGIN + "\n\n" + reference() + "\n" + END + rest.split(END)[1],
                    encoding="utf-8")
