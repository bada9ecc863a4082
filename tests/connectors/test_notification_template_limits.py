"""Template budgets: every hostile template ends in a ConnectorError naming the limit."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ductwork.connectors.base import validate_resource
from ductwork.connectors.notification import sandbox
from ductwork.connectors.notification.templates import template_problems
from ductwork.errors import ConnectorError
from tests.connectors.test_notification_templates import templates


def render(source: str, variables: dict[str, Any] | None = None,
           field: str = "message") -> str:
    return templates({"e": {field: source}}).render("e", field, variables or {}, arg="input")


def fails(source: str, variables: dict[str, Any] | None = None) -> str:
    with pytest.raises(ConnectorError) as info:
        render(source, variables)
    return str(info.value)


@pytest.mark.parametrize(("source", "message"), [
    # jinja folds constants while compiling: this one used to hang before rendering began
    ("{{ 9**(9**9) }}", "number would have more than 4000 digits"),
    ("{{ 10**4001 }}", "number would have more than 4000 digits"),
    ("{{ 'a'*10**9 }}", "text would be longer than 1,000,000 characters"),
    ("{{ [0]*10**9 }}", "list would have more than 100,000 items"),
    ("{{ ([[0]*1000]*1000)|length }}", "list would hold more than 100,000 values"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
     "template does too much work (more than 500,000 loop iterations"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}",
     "rendered template would be longer than 1,000,000 characters"),
    ("{% macro f(n) %}{% if n > 0 %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(60) }}",
     "template does too much work"),
    ("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
     "{% endfor %}", "text would be longer than 1,000,000 characters"),
    ("{{ 'a'|center(10**9) }}", "filter 'center': 1000000000 is too large for a template"),
    ("{{ 'a'.ljust(10**9) }}", "ljust(): 1000000000 is too large for a template"),
    ("{{ '{:>999999999}'.format(1) }}", "format width too large"),
    ("{{ '{:>900000}{:>900000}'.format(1, 2) }}", "formatted text would be longer"),
    ("{{ '%999999999d' % 1 }}", "format width too large"),
    ("{{ '%*d' % (10**6, 1) }}", "'*' widths are not allowed"),
    ("{{ '%900000d'|format(1) ~ '%900000d'|format(1) }}", "text would be longer"),
    ("{{ (['a'*100000]*50)|join }}", "text would be longer than 1,000,000 characters"),
    ("{{ ('a'*100000)|replace('a', 'bbbbbbbbbbbbbbb') }}", "text would be longer"),
    ("{{ ('a'*100000).replace('a', 'bbbbbbbbbbbbbbb') }}", "text would be longer"),
    ("{{ ('\t'*100000).expandtabs(1000) }}", "text would be longer"),
    ("{{ ('x\n'*100000)|indent(100) }}", "text would be longer"),
])
def test_hostile_templates_fail_with_the_limit_they_break(source: str, message: str) -> None:
    got = fails(source)
    assert got.startswith("notification/transactional/e (env dev): template 'message' failed: ")
    assert message in got


def test_ordinary_templates_render_as_before() -> None:
    source = ("Hi {{ name }} {{ 3 * 4 }} {{ 2 ** 10 }} {{ 'x' ~ name }} "
              "{% for i in items %}{{ i }}{% endfor %} {{ '%5.2f'|format(3.14159) }} "
              "{{ '{:>5}'.format('a') }} {{ '%s!' % name }} {{ items|join(',') }} "
              "{{ 'ab' * 3 }} {{ ([1] * 3)|length }} {{ items|sum }}")
    assert render(source, {"name": "Bob", "items": [1, 2]}) == \
        "Hi Bob 12 1024 xBob 12  3.14     a Bob! 1,2 ababab 3 3"
    html = templates({"e": {"subject": "s", "html": "<p>{{ a ~ b }}</p>"}})
    assert html.render("e", "html", {"a": "<x>", "b": "&"}, arg="t") == "<p>&lt;x&gt;&amp;</p>"


def test_the_step_budget_is_per_render(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "MAX_STEPS", 50_000)
    loop = "{% for i in range(20000) %}{% endfor %}"
    for _ in range(3):  # 40,000 steps each, 120,000 in all: each render has its own budget
        assert render(loop * 2) == ""
    assert "template does too much work (more than 50,000" in fails(loop * 3)


def test_a_template_over_the_size_limit_is_a_validate_problem_and_a_render_error() -> None:
    source = "x" * (sandbox.MAX_SOURCE + 1)
    (detail,) = template_problems("text", source)
    assert detail == "template 'text' is too long (100,001 characters, at most 100,000)"
    assert detail.hint is not None and "pass long content" in detail.hint
    assert "template 'message' is too long (100,001 characters" in fails(source)
    # `ductwork validate` reports it at the template's key
    definition = {"envs": {"dev": {}}, "events": {"e": {"subject": "s", "text": source}}}
    assert (("events", "e", "text"),
            "template 'text' is too long (100,001 characters, at most 100,000)") in \
        validate_resource("notification", definition, {})


# -- fuzz: pieces of hostile templates, combined ----------------------------------------------

PIECES = st.sampled_from([
    "{{ 9**99 }}", "{{ 'ab' * n }}", "{{ n ** n }}", "{% for i in range(n) %}x{% endfor %}",
    "{{ ([0] * n)|length }}", "{{ 'a'|center(n) }}", "{{ '%5d' % n }}", "{{ s ~ s }}",
    "{{ s|replace('y', 'zz') }}", "{{ (s * 3)|length }}", "{{ '{:>9}'.format(n) }}",
    "{{ s.ljust(n) }}", "{% set t = s ~ s %}{{ t|length }}", "{{ [s] * n }}",
])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(PIECES, min_size=1, max_size=4),
       st.sampled_from([0, 3, 1000, 10**5, 10**6 + 1, 10**9]))
def test_combined_pieces_render_within_the_limits_or_fail_with_a_connector_error(
        pieces: list[str], n: int) -> None:
    try:
        out = render("".join(pieces), {"n": n, "s": "y" * 200_000})
    except ConnectorError:
        return
    assert len(out) <= sandbox.MAX_OUTPUT
