"""Every library function gives the same result or error in a YAML expression and ctx.transform."""

from __future__ import annotations

import datetime as dt
import json
import re
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ductwork import Ductwork
from ductwork.dsl.expr.expressions import FUNCTIONS, parse
from ductwork.errors import ExpressionError
from ductwork.interpreter.transform import Transform

D = dt.datetime(2024, 1, 31, 22, 30, 15, 250000, tzinfo=dt.UTC)
ROWS = [{"id": 1, "price": 2, "status": "paid", "tags": ["a"], "c": {"city": "Oslo"}},
        {"id": 2, "price": 3.5, "status": "open", "tags": [], "c": {"city": "Rome"}},
        {"id": 3, "price": 2, "status": "paid", "active": True, "c": {"city": "Oslo"}}]

# name -> argument tuples: everyday inputs, edge cases, and wrong ones (which must fail the
# same way). Every name of FUNCTIONS, aliases included, must be here (test_table_is_complete).
CASES: dict[str, list[tuple[Any, ...]]] = {
    # text
    "upper": [("ada",), ("",), (1,), (None,)],
    "lower": [("ADA",), (["a"],)],
    "capitalize": [("ada lovelace",), ("",), ("éa",), (3,)],
    "title": [("ada LOVELACE  byron",), ("x",), (True,)],
    "slug": [("Crème Brûlée: 2 pots!",), ("--a--b--",), ("",), (None,)],
    "trim": [("  x  ",), ("--x--", "-"), ("x", 1)],
    "split": [("a,b,c", ","), ("a b  c",), ("a,b,c", ",", 1), ("a", ""), (1, ",")],
    "join": [(["a", 1, True, None, {"k": [1]}],), (["a", "b"], " - "), ([],), ("ab",),
             (["a"], 2)],
    "replace": [("a-b-c", "-", "+"), ("aaa", "", "x"), ("a", "b", None)],
    "starts_with": [("hello", "he"), ("hello", "lo"), ("hello", 1)],
    "ends_with": [("hello", "lo"), ("", ""), (None, "x")],
    "contains": [([1, 2], 2), ("hello", "ell"), ({"a": 1}, "a"), ([True], 1), ("abc", 1),
                 (5, 1)],
    "pad_start": [(7, 3, "0"), ("ab", 5), ("abc", 2, "x"), ("a", 6, "xy"), ("a", 3, ""),
                  ("a", 1.5), ("a", 2_000_000)],
    "pad_end": [("ab", 4, "."), (3.5, 5, "0"), ([1], 3)],
    "truncate": [("a long sentence", 8), ("short", 8), ("abcdef", 4, "…"), ("abc", 1, "..."),
                 ("abc", -1)],
    "url_encode": [("a b&c=d/é",), (1,)],
    "base64_encode": [("hi é",), (None,)],
    "base64_decode": [("aGk=",), ("not base64!",), ("//8=",)],
    "sha256": [("order-7",), (7,)],
    # lists
    "size": [([1, 2, 3],), ("abcd",), ({"a": 1},), (None,), (5,), (True,)],
    "range": [(3,), (1, 7, 2), (3, 0, -1), (1, 2, 0), (100_000,), (1.5,)],
    "sum": [([1, 2, 3],), ([],), (ROWS, "price"), (ROWS, "c.city"), (ROWS, "nope"),
            (["a"],), ([Decimal("1.5"), 2],), ([1, None],)],
    "avg": [([1, 2, 3, 4],), ([2, 4],), (ROWS, "price"), ([],), ([1, "x"],)],
    "min": [(3, 1, 2), ([3, 1, 2],), ("b", "a"), (ROWS, "price"), ([],), (1, "a"),
            ([D, D - dt.timedelta(days=1)],)],
    "max": [(3, 1, 2), ([3, 1, 2],), (ROWS, "id"), ([None],)],
    "pluck": [(ROWS, "id"), (ROWS, "c.city"), (ROWS, "active"), ([1], "id"), (ROWS, "")],
    "filter": [(ROWS, "active"), (ROWS, "status", "paid"), ([0, 1, "", "a", None],),
               (ROWS, "missing", None), (ROWS, 1)],
    "find": [(ROWS, "id", 2), (ROWS, "status", "none"), (ROWS, "active"), ("x", "id")],
    "count": [(ROWS,), (ROWS, "status", "paid"), (ROWS, "tags"), ({}, "a")],
    "unique": [([1, 2, 1, 3, True, 1.0],), (ROWS, "status"), ([{"a": 1}, {"a": 1}],),
               (["a"], 3)],
    "sort": [([3, 1, 2],), (ROWS, "price", "desc"), (["b", None, "a"],), ([1, "a"],),
             ([1], None, "down"), ([D, D - dt.timedelta(days=1)],)],
    "group_by": [(ROWS, "status"), (ROWS, "c.city"), ([1, 2], "x"), (ROWS,)],
    "first": [([1, 2],), ([],), ("ab",)],
    "last": [([1, 2],), ([],)],
    "reverse": [([1, 2, 3],), ("abc",), (5,)],
    "flatten": [([[1, 2], [3], 4, []],), ([],), ({"a": 1},)],
    "slice": [("abcdef", 1, 3), ([1, 2, 3], -2), ("abc", 0, -1), ("abc", "1")],
    "index_of": [(["a", "b"], "b"), ("hello", "l"), ([1], 2), ("abc", 1), (3, 3)],
    # dates
    "format_date": [
        ("2024-05-01T12:30:00Z", "YYYY-MM-DD"), ("2024-05-01T12:30:00Z",), ("2024-05-01",),
        (0, "YYYY"), (1714566600000,), (D, "dddd D MMMM YYYY [at] h:mm:ss.SSS A"),
        (D, "ddd DD MMM YY HH:mm Z ZZ x"), ("2024-05-01T12:30:00+02:00", "HH:mm Z"),
        ("2024-05-01T12:30:00Z", "HH:mm", "Europe/Paris"), ("2024-05-01", None, "UTC"),
        (dt.date(2024, 5, 1),), (Decimal("1000.5"),), ("yesterday",), (0, "%Y"),
        (0, None, "Mars/Base"), (0, None, "../../etc/passwd"), (True,), (10**20,)],
    "parse_date": [
        ("01/05/2024", "DD/MM/YYYY"), ("1 May 2024 3:04 pm", "D MMM YYYY h:mm a"),
        ("2024-05-01T12:00:00+02:00", "YYYY-MM-DD[T]HH:mm:ssZ"), ("24-5-1", "YY-M-D"),
        ("Wednesday 1 may 2024", "dddd D MMMM YYYY"), ("1714566600000", "x"),
        ("2024-05-01T12:00:00Z",), ("2024-05-01",), ("31/02/2024", "DD/MM/YYYY"),
        ("2024", "DD/MM/YYYY"), ("01 01", "MM MM"), (20240501, "YYYYMMDD")],
    "add": [("2024-05-01", "1d"), ("2024-05-01", "12h"), ("2024-05-01T23:00:00Z", "2h"),
            (D, "-1w"), (0, 3_600_000), ("2024-05-01T00:00:00+02:00", "90m"),
            (D, dt.timedelta(minutes=5)), ("2024-05-01", "1x"), ("9999-12-31", "1d"),
            ("2024-05-01", True)],
    "add_months": [("2024-01-31", 1), ("2024-03-31", -1), (D, 13), ("2024-05-01", 1.0),
                   ("0001-01-01", -1)],
    "diff": [("2024-05-03", "2024-05-01", "d"), ("2024-05-01", "2024-05-03T12:00:00Z", "d"),
             (D, 0), ("2024-05-01T01:00:00+01:00", "2024-05-01T00:00:00Z", "m"),
             (1000, 0, "s"), ("2024-05-01", "2024-05-01", "days"), ("x", 0)],
    "timestamp": [("2024-05-01T00:00:00Z",), (D,), (dt.date(1970, 1, 2),), (-1,), ([],)],
    # data
    "parse_json": [('{"a": [1, 2]}',), (b"[1]",), ("{",), (1,)],
    "stringify": [({"a": [1, True, None]},), ({"a": 1}, 2), ([D, Decimal("2.50")],),
                  ({"a": 1}, 99), ({1, 2},)],
    "default": [(None, "friend"), ("Ada", "friend"), (0, 1)],
    "coalesce": [(None, None, "x"), (None,), ("", "x")],
    "exists": [(None,), (0,), ([],)],
    "int": [("42",), (" 7 ",), ("3.9",), (3.9,), (True,), ("abc",), (float("inf"),), (None,)],
    "float": [("2.5",), (2,), (False,), ("x",), ([],)],
    "str": [(42,), (None,), (False,), ([1, "a"],), (D,), (dt.date(2024, 5, 1),)],
    "bool": [("yes",), ("false",), (0,), ([1],), ("maybe",), (None,)],
    "round": [(2.567, 2), (2.5,), (1234, -2), (1.5, 400), (float("nan"),), ("1",)],
    "floor": [(2.7,), (-2.5,), (Decimal("2.5"),), (float("inf"),), ("2",)],
    "ceil": [(2.1,), (-2.5,), (2,), (None,)],
    "abs": [(-3,), (2.5,), ("x",)],
    "keys": [({"a": 1, "b": 2},), ([1],)],
    "values": [({"a": 1, "b": 2},), (None,)],
    "merge": [({"a": 1, "b": 1}, {"b": 2}, {"c": 3}), ({},), ({}, 1)],
    "pick": [({"a": 1, "b": 2, "c": 3}, ["a", "c", "z"]), ({"a": 1}, [1]), ([], [])],
    "omit": [({"a": 1, "b": 2, "c": 3}, ["b"]), ({"a": 1}, "a")],
    "get": [({"customer": {"id": 7}}, "customer.id"), ({"items": [{"sku": "x"}]}, "items.0.sku"),
            ({"a": 1}, "b", "none"), ({"a": None}, "a", "none"), ({}, ""), (1, "a")],
}
ALIASES = {"length": "size", "len": "size", "json": "stringify", "map": "pluck",
           "sort_by": "sort", "substring": "slice"}
for _alias, _name in ALIASES.items():
    CASES[_alias] = CASES[_name][:2]
NOT_REPEATABLE = {"now": r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", "uuid": r"[0-9a-f-]{36}"}


def _outcome(run: Any) -> tuple[str, Any]:
    try:
        return "ok", run()
    except ExpressionError as e:
        return "error", str(e)


def _yaml(name: str, args: tuple[Any, ...]) -> tuple[str, Any]:
    """The function called in an expression, its arguments read from the scope."""
    text = f"{name}({', '.join(f'item[{i}]' for i in range(len(args)))})"
    return _outcome(lambda: parse(text).evaluate({"item": list(args)}))


def _literal(v: Any) -> str | None:
    if v is None or isinstance(v, bool | int | str) or (isinstance(v, float) and v == v
                                                        and abs(v) != float("inf")):
        return json.dumps(v)
    if isinstance(v, list):
        parts = [_literal(x) for x in v]
        return None if None in parts else "[" + ", ".join(p for p in parts if p) + "]"
    if isinstance(v, dict) and all(isinstance(k, str) for k in v):
        items = [(json.dumps(k), _literal(x)) for k, x in v.items()]
        if any(x is None for _, x in items):
            return None
        return "{" + ", ".join(f"{k}: {x}" for k, x in items) + "}"
    return None


def _same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down (2 is not 2.0, true is not 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


PARAMS = [(name, args) for name in sorted(CASES) for args in CASES[name]]


def test_table_is_complete() -> None:
    assert set(CASES) | set(NOT_REPEATABLE) == set(FUNCTIONS)
    for name, info in FUNCTIONS.items():
        assert info.example, f"{name} has no example"
        for alias in info.aliases:
            assert FUNCTIONS[alias].doc == info.doc


@pytest.mark.parametrize(("name", "args"), PARAMS,
                         ids=[f"{n}-{i}" for n in sorted(CASES) for i in range(len(CASES[n]))])
def test_yaml_and_ctx_transform_agree(name: str, args: tuple[Any, ...]) -> None:
    yaml = _yaml(name, args)
    python = _outcome(lambda: getattr(Transform(), name)(*args))
    assert yaml[0] == python[0] and _same(yaml[1], python[1]), (yaml, python)
    if yaml[0] == "error":
        assert yaml[1].startswith(f"{name}(") and "Error" not in yaml[1], yaml[1]
    literals = [_literal(a) for a in args]
    if None not in literals:  # written as literals, the expression says the same
        text = f"{name}({', '.join(str(x) for x in literals)})"
        assert _same(_outcome(lambda: parse(text).evaluate({})), yaml), text


@pytest.mark.parametrize("name", sorted(NOT_REPEATABLE))
def test_now_and_uuid_have_one_shape(name: str) -> None:
    yaml, python = _yaml(name, ()), _outcome(getattr(Transform(), name))
    assert yaml[0] == python[0] == "ok"
    assert re.fullmatch(NOT_REPEATABLE[name], yaml[1])
    assert re.fullmatch(NOT_REPEATABLE[name], python[1])
    if name == "now":
        t = Transform()
        assert abs(t.diff(yaml[1], python[1], "s")) <= 5


def test_ctx_transform_names_and_errors() -> None:
    t = Transform()
    assert sorted(dir(t)) == sorted(FUNCTIONS)
    with pytest.raises(AttributeError, match="did you mean 'format_date'"):
        t.formatDate(0)  # the camelCase of the original SDK
    with pytest.raises(ExpressionError, match=r"upper\(\) takes 1 argument, got 2"):
        t.upper("a", "b")
    with pytest.raises(ExpressionError, match="positional arguments only"):
        t.join(["a"], sep="-")
    assert "pad_start(text: string|number, width: integer" in (t.pad_start.__doc__ or "")


JSON_CASES = [(n, a) for n, a in PARAMS
              if _literal(list(a)) is not None and _yaml(n, a)[0] == "ok"]


async def test_a_yaml_workflow_and_a_python_handler_agree(tmp_path: Path, store_url: str) -> None:
    """Through the engine: the YAML output and the handler's ctx.transform results, both
    recorded and read back, are the same for every JSON-only case of the table."""
    specs = tmp_path / "specs" / "shop"
    (specs / "workflows").mkdir(parents=True)
    (specs / "product.yaml").write_text("product: shop\nenvs: [dev]\n")
    exprs = {}
    for i, (n, a) in enumerate(JSON_CASES):
        args = ", ".join(f"ctx.input.cases[{i}][{j}]" for j in range(len(a)))
        exprs[f"r{i}"] = "${" + f"{n}({args})" + "}"
    (specs / "workflows" / "parity.yaml").write_text(textwrap.dedent("""
        workflow: parity
        steps:
          - set: {ok: true}
    """) + "output: " + json.dumps(exprs) + "\n")
    data = {"cases": [list(a) for _, a in JSON_CASES]}
    async with Ductwork(specs=tmp_path / "specs", store=store_url) as dw:

        @dw.workflows.workflow(product="shop", tag="parity-py")
        async def handler(ctx: Any) -> Any:
            return {f"r{i}": getattr(ctx.transform, n)(*ctx.input.cases[i])
                    for i, (n, _) in enumerate(JSON_CASES)}

        yaml = await dw.workflows.execute(product="shop", env="dev", tag="parity", input=data)
        python = await dw.workflows.execute(product="shop", env="dev", tag="parity-py",
                                            input=data)
    assert yaml.status == python.status == "completed", (yaml.error, python.error)
    assert len(JSON_CASES) > 150
    for key in exprs:
        assert _same(yaml.output[key], python.output[key]), (key, exprs[key])
