"""Phase 1: YAML -> plain data with a source position for every node."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ductwork.dsl.loader import MAX_NODES, load_file, load_text
from ductwork.errors import CompileError


def errors(text: str) -> list[str]:
    with pytest.raises(CompileError) as exc:
        load_text(text, "f.yaml")
    return [d.short() for d in exc.value.diagnostics]


def test_values_and_keys_have_positions() -> None:
    doc = load_text("workflow: w\nsteps:\n  - tag: a\n    sleep: 5s\n", "w.yaml")
    assert doc.data == {"workflow": "w", "steps": [{"tag": "a", "sleep": "5s"}]}
    assert doc.locate(("workflow",)) == (1, 11)
    assert doc.locate(("steps", 0)) == (3, 5)
    assert doc.locate(("steps", 0, "sleep")) == (4, 12)
    assert doc.locate(("steps", 0, "sleep"), key=True) == (4, 5)
    # an unknown path falls back to its nearest known ancestor
    assert doc.locate(("steps", 0, "nope", 3)) == (3, 5)


def test_yaml_1_2_scalars_no_norway_problem() -> None:
    doc = load_text(
        "a: yes\nb: on\nc: 2024-01-01\nd: true\ne: null\nf: ~\ng: 12\nh: 0x1F\ni: 1.5\n"
        "j: 1e3\nk: '12'\nl: 1:30\nm: False\n", "f.yaml", strict=False)
    assert doc.data == {"a": "yes", "b": "on", "c": "2024-01-01", "d": True, "e": None,
                        "f": None, "g": 12, "h": 31, "i": 1.5, "j": 1000.0, "k": "12",
                        "l": "1:30", "m": False}
    # read as text here, but as booleans by YAML 1.1 tools: a warning, with the quoted form
    assert [(d.short(), d.hint) for d in doc.problems] == [
        ("1:4: warning: ambiguous value 'yes': YAML 1.1 tools read it as the boolean true",
         'write true for a boolean, or "yes" in quotes for the text'),
        ("2:4: warning: ambiguous value 'on': YAML 1.1 tools read it as the boolean true",
         'write true for a boolean, or "on" in quotes for the text'),
    ]


def test_non_string_keys_become_their_text() -> None:
    assert load_text("200: ok\ntrue: x\n", "f.yaml").data == {"200": "ok", "true": "x"}


def test_duplicate_keys_are_rejected_with_both_lines() -> None:
    assert errors("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n") == [
        "4:3: duplicate key 'c' (first defined on line 3)",
        "5:1: duplicate key 'a' (first defined on line 1)",
    ]


def test_strict_false_leaves_readable_mistakes_to_the_schema_phase() -> None:
    text = "a: 1\nb: {c: 1, c: 2}\nd: off\n"
    doc = load_text(text, "f.yaml", strict=False)
    assert doc.data == {"a": 1, "b": {"c": 1}, "d": "off"}
    assert [d.short() for d in doc.problems] == [
        "2:11: duplicate key 'c' (first defined on line 2)",
        "3:4: warning: ambiguous value 'off': YAML 1.1 tools read it as the boolean false"]
    # strict (the default) raises for the errors; a warning alone never does
    assert errors(text) == ["2:11: duplicate key 'c' (first defined on line 2)"]
    assert load_text("d: off\n", "f.yaml").data == {"d": "off"}


def test_test_case_files_reject_duplicate_keys(tmp_path: Path) -> None:
    from ductwork.testing.cases import parse_file

    f = tmp_path / "cases.yaml"
    f.write_text("workflow: w\ncases:\n  - name: a\n    input: {x: 1}\n    input: {x: 2}\n")
    cases, problems = parse_file(f, {})
    assert cases == []
    assert [(d.short(), d.hint) for d in problems] == [
        ("5:5: duplicate key 'input' (first defined on line 4)",
         "a key appears once in a mapping: keep one 'input' (merge the two values if both hold "
         "a part)")]


def test_syntax_error_is_located() -> None:
    assert errors("steps:\n  - tag: a\n   sleep: 5s\n") == [
        "3:4: 'sleep' is indented one space less than 'tag' on line 2"]
    assert errors("a: b: c\n") == ["1:5: ': ' inside an unquoted value"]
    assert errors("a: [1, 2\n") == ["1:4: this '[' is never closed"]
    # what no detector knows keeps the parser's words
    assert errors("a: 1\n- b\n") == ["2:1: YAML syntax error: did not find expected key"]


def test_only_one_document() -> None:
    assert errors("a: 1\n---\nb: 2\n") == ["2:1: a second YAML document ('---') in the file"]


def test_unsupported_yaml_features() -> None:
    assert errors("a: !!binary aGk=\n") == ["1:4: unsupported YAML tag 'tag:yaml.org,2002:binary'"]
    assert errors("a: !custom x\n") == ["1:4: unsupported YAML tag '!custom'"]
    assert errors("base: &b {x: 1}\nother:\n  <<: *b\n") == [
        "3:3: YAML merge keys ('<<') are not supported"]
    assert errors("? [a, b]\n: 1\n") == [
        "1:3: mapping keys must be plain strings, not lists or mappings"]
    assert errors("a: !!int abc\n") == ["1:4: 'abc' is not a valid int"]
    assert errors("a: .inf\nb: -.Inf\nc: .nan\n") == [
        "1:4: '.inf' is not a finite number", "2:4: '-.Inf' is not a finite number",
        "3:4: '.nan' is not a finite number"]


def test_aliases_are_shared_and_bounded() -> None:
    assert load_text("a: &x [1, 2]\nb: *x\n", "f.yaml").data == {"a": [1, 2], "b": [1, 2]}
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 8):
        prev = chr(ord("a") + i - 1)
        cur = chr(ord("a") + i)
        bomb += f"{cur}: &{cur} [{', '.join(['*' + prev] * 10)}]\n"
    (message,) = errors(bomb)
    assert message.endswith(f"document too large (more than {MAX_NODES} nodes after aliases)")


def test_empty_document_is_none() -> None:
    assert load_text("", "f.yaml").data is None
    assert load_text("# only a comment\n", "f.yaml").data is None


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    (message,) = errors("[" * 5000 + "]" * 5000)
    assert message == "1:1001: YAML syntax error: exceeded maximum nesting depth"


@pytest.mark.parametrize(("yaml_value", "offset", "expected"), [
    ('a: ${ctx.input.x}\n', 6, (1, 10)),                       # plain
    ('a: "x ${steps.b}"\n', 4, (1, 9)),                         # double-quoted
    ("a: 'it''s ${steps.b}'\n", 7, (1, 13)),                   # single quote escape
    ('a: "\\t${steps.b}"\n', 3, (1, 9)),                       # escape before the needle
    ("a: |\n  line one\n  x ${steps.b}\n", 13, (3, 7)),        # literal block
    ("a: >\n  folded text\n  ${steps.b} end\n", 14, (3, 5)),   # folded block
])
def test_offsets_inside_strings_map_to_source(yaml_value: str, offset: int,
                                               expected: tuple[int, int]) -> None:
    doc = load_text(yaml_value, "f.yaml")
    assert doc.locate(("a",), offset=offset) == expected


def test_width_of_a_scalar() -> None:
    doc = load_text('a: users-dbb\nb: "quoted"\nc: [1]\n', "f.yaml")
    assert doc.width(("a",)) == 9
    assert doc.width(("b",)) == 8
    assert doc.width(("c",)) == 1


def test_load_file_errors(tmp_path: Path) -> None:
    with pytest.raises(CompileError) as exc:
        load_file(tmp_path / "missing.yaml")
    assert "cannot read file" in str(exc.value)
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"a: caf\xe9\n")
    with pytest.raises(CompileError) as exc:
        load_file(bad)
    assert exc.value.diagnostics[0].message == "file is not UTF-8 text (bad byte at offset 6)"


def test_load_file_strips_bom(tmp_path: Path) -> None:
    f = tmp_path / "bom.yaml"
    f.write_bytes(b"\xef\xbb\xbfa: 1\n")
    assert load_file(f).data == {"a": 1}


def test_rendered_error_has_source_line_and_caret() -> None:
    with pytest.raises(CompileError) as exc:
        load_text("a: 1\na: 2\n", "specs/p/workflows/w.yaml")
    assert str(exc.value) == (
        "specs/p/workflows/w.yaml:2:1: duplicate key 'a' (first defined on line 1)\n"
        "   2 | a: 2\n"
        "     | ^\n"
        "     = hint: a key appears once in a mapping: keep one 'a' (merge the two values if both "
        "hold a part)"
    )


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_raises_only_compile_error(text: str) -> None:
    try:
        load_text(text, "fuzz.yaml")
    except CompileError as e:
        assert e.diagnostics and all(d.line >= 1 and d.col >= 1 for d in e.diagnostics)


_YAMLISH = st.text(alphabet=st.sampled_from(list("ab:-[]{}&*!|>'\"#\n ,?%@`<=~.$")), max_size=80)


@settings(max_examples=500, deadline=None)
@given(_YAMLISH)
def test_yaml_punctuation_soup_raises_only_compile_error(text: str) -> None:
    try:
        load_text(text, "fuzz.yaml")
    except CompileError as e:
        assert e.diagnostics


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_compile_error(tmp_path_factory: pytest.TempPathFactory,
                                                  data: bytes) -> None:
    f = tmp_path_factory.mktemp("fuzz") / "f.yaml"
    f.write_bytes(data)
    try:
        load_file(f)
    except CompileError as e:
        assert e.diagnostics
