"""Redaction: a secret is masked raw, URL-encoded, JSON-escaped and base64-encoded (alone or
inside a longer encoded text), and the HTTP client's log lines carry no query values."""

from __future__ import annotations

import base64
import json
import logging
import re
import urllib.parse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ductwork.connectors.base import SecretSet
from ductwork.connectors.redaction import redact_url_text


def secrets(*values: str) -> SecretSet:
    s = SecretSet()
    for v in values:
        s.add(v)
    return s


@pytest.mark.parametrize("form", [
    lambda v: v,
    lambda v: urllib.parse.quote(v, safe=""),
    lambda v: urllib.parse.quote(v),
    lambda v: urllib.parse.quote_plus(v),
    lambda v: re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(),
                     urllib.parse.quote(v, safe="")),
    lambda v: json.dumps(v)[1:-1],
    lambda v: json.dumps(v, ensure_ascii=True)[1:-1],
    lambda v: base64.b64encode(v.encode()).decode(),
    lambda v: base64.urlsafe_b64encode(v.encode()).decode().rstrip("="),
])
def test_each_form_of_a_secret_is_masked(form: object) -> None:
    value = 'pa55:w/rd+Zq&x "é"'
    encoded = form(value)  # type: ignore[operator]
    text = f"before {encoded} after"
    assert secrets(value).redact(text) == "before *** after"


@pytest.mark.parametrize("user", ["", "a", "ab", "abc", "svc-account"])
def test_basic_auth_of_any_user_is_masked(user: str) -> None:
    password = "correct-horse"
    header = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    out = secrets(password).redact(header)
    assert "***" in out
    # What is left around the mask is at most a few characters of partial bytes.
    assert len(out.replace("***", "")) <= len("Basic ") + len(user) * 4 // 3 + 5


def decoded(chunk: str) -> bytes:
    try:
        return base64.b64decode(chunk)
    except ValueError:  # not base64 at this alignment
        return b""


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=6, max_size=30), st.binary(max_size=8), st.binary(max_size=8))
def test_a_secret_inside_any_base64_text_is_masked(secret: str, before: bytes,
                                                   after: bytes) -> None:
    encoded = base64.b64encode(before + secret.encode() + after).decode()
    out = secrets(secret).redact(encoded)
    assert "***" in out
    for part in out.split("***"):  # no unmasked part still spells the secret
        for shift in range(4):
            chunk = part[shift:]
            chunk = chunk[: len(chunk) - len(chunk) % 4]
            assert secret.encode() not in decoded(chunk)


def test_short_values_are_not_secrets_and_json_shows_the_mask() -> None:
    s = secrets("abc", "s3cr3t-value")
    assert s.redact("abc s3cr3t-value") == "abc ***"
    assert json.loads(s.redact(json.dumps({"k": "s3cr3t-value"}))) == {"k": "***"}


def test_urls_lose_query_values_and_passwords() -> None:
    assert redact_url_text('GET https://u:pw@h.io/p?a=1&key=K2%2F "200"') == \
        'GET https://u:***@h.io/p?a=***&key=*** "200"'


def test_httpx_log_records_are_rewritten(caplog: pytest.LogCaptureFixture) -> None:
    live = secrets("tok-ABCDEFGH")  # a live SecretSet installs the filter, lends its secrets
    caplog.set_level(logging.DEBUG)
    logging.getLogger("httpx").info('HTTP Request: %s %s "%s"', "GET",
                                    "http://h/x?api_key=tok-ABCDEFGH", "HTTP/1.1 200 OK")
    logging.getLogger("httpcore.http11").debug("sent Bearer %s", "tok-ABCDEFGH")
    messages = [r.getMessage() for r in caplog.records]
    assert live
    assert messages == ['HTTP Request: GET http://h/x?api_key=*** "HTTP/1.1 200 OK"',
                        "sent Bearer ***"]
