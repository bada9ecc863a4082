"""ductwork.cli.common.read_json: JSON options given inline or as @FILE."""

from __future__ import annotations

from pathlib import Path

import pytest

from ductwork.cli.common import read_json
from ductwork.errors import ConfigurationError


def test_inline_file_and_absent(tmp_path: Path) -> None:
    f = tmp_path / "in.json"
    f.write_text('{"a": "é"}', "utf-8")
    assert read_json('{"a": 1}', "--input") == {"a": 1}
    assert read_json(f"@{f}", "--input") == {"a": "é"}
    assert read_json(None, "--merge") is None


def test_errors_name_the_option_or_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"--payload: not valid JSON .*quote it"):
        read_json("{a: 1}", "--payload")
    bad = tmp_path / "bad.json"
    bad.write_text("{", "utf-8")
    with pytest.raises(ConfigurationError, match=r"bad\.json: not valid JSON \(") as e:
        read_json(f"@{bad}", "--input")
    assert "quote it" not in str(e.value)
    with pytest.raises(ConfigurationError, match=r"--input: cannot read .*missing\.json"):
        read_json(f"@{tmp_path / 'missing.json'}", "--input")


def test_a_file_without_its_at_sign_and_python_quotes_are_explained(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "input.json").write_text('{"a": 1}', "utf-8")
    with pytest.raises(ConfigurationError, match=r"^--input: input\.json is a file: write "
                       r"--input @input\.json to read it$"):
        read_json("input.json", "--input")
    with pytest.raises(ConfigurationError, match=r"JSON writes names and text in double "
                       r"quotes, and the shell needs single quotes around it all"):
        read_json("{'email': 'ann@example.com'}", "--input")


def test_a_huge_number_or_deep_nesting_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"--input: not usable JSON \(Exceeds the limit"):
        read_json('{"n": ' + "9" * 5000 + "}", "--input")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000, "utf-8")
    with pytest.raises(ConfigurationError, match=r"deep\.json: not usable JSON \(nested too"):
        read_json(f"@{deep}", "--input")
