"""Notification templates (sandboxed Jinja2, StrictUndefined) and `ductwork validate` checks."""

from __future__ import annotations

from typing import Any

import pytest

from ductwork.connectors.base import ResourceSpec, SecretSet, validate_resource
from ductwork.connectors.notification import validate
from ductwork.connectors.notification.templates import Templates
from ductwork.errors import ConnectorError

EVENTS: dict[str, Any] = {
    "welcome-email": {"subject": "Welcome, {{ name }}", "text": "Hi {{ user.first }}",
                      "html": "<p>{{ name }}</p>"},
    "escape": {"subject": "{{ ''.__class__ }}", "text": "x"},
    "mro": {"subject": "{{ ''.__class__.__mro__[1].__subclasses__() }}", "text": "x"},
    "globals": {"subject": "{{ cycler.__init__.__globals__.os }}", "text": "x"},
    "mutate": {"subject": "{{ items.append(1) }}", "text": "x"},
    "loops": {"message": "{% for i in items %}{{ i }},{% endfor %}"
                         "{% if missing is defined %}!{% endif %}"},
    "broken": {"message": "{{ name"},
    "boom": {"message": "{{ 1 / n }}"},
}


def templates(events: dict[str, Any] = EVENTS, secrets: tuple[str, ...] = ()) -> Templates:
    ss = SecretSet()
    for s in secrets:
        ss.add(s)
    return Templates(ResourceSpec(kind="notification", name="transactional", env="dev",
                                  product="shop", config={}, definition={"events": events},
                                  secrets=ss))


def test_render_subject_text_and_escaped_html() -> None:
    t = templates()
    assert t.render("welcome-email", "subject", {"name": "Jane"}, arg="subject") == \
        "Welcome, Jane"
    assert t.render("welcome-email", "text", {"user": {"first": "J"}}, arg="template") == "Hi J"
    assert t.render("welcome-email", "html", {"name": "<script>x</script>"}, arg="t") == \
        "<p>&lt;script&gt;x&lt;/script&gt;</p>"
    assert t.render("loops", "message", {"items": [1, 2]}, arg="message") == "1,2,"


def test_missing_variable_is_an_error_naming_the_variable_and_the_event() -> None:
    t = templates()
    with pytest.raises(ConnectorError) as info:
        t.render("welcome-email", "subject", {"nmae": "Jane"}, arg="subject")
    err = info.value
    assert str(err) == ("notification/transactional/welcome-email (env dev): template 'subject' "
                        "needs variable 'name', which was not passed (pass it in subject={...})")
    assert (err.kind, err.resource, err.event, err.env) == (
        "notification", "transactional", "welcome-email", "dev")
    with pytest.raises(ConnectorError, match=r"template 'text' uses 'first', which is missing"):
        t.render("welcome-email", "text", {"user": {}}, arg="template")
    with pytest.raises(ConnectorError, match=r"needs variable 'name'"):
        t.render("welcome-email", "subject", None, arg="subject")


@pytest.mark.parametrize("event", ["escape", "mro", "globals", "mutate"])
def test_the_sandbox_blocks_attribute_escapes(event: str) -> None:
    with pytest.raises(ConnectorError, match=rf"{event} \(env dev\): template 'subject' is not "
                                             r"allowed: .*unsafe"):
        templates().render(event, "subject", {"items": []}, arg="subject")


def test_syntax_errors_runtime_errors_and_bad_variables_are_connector_errors() -> None:
    t = templates()
    with pytest.raises(ConnectorError, match=r"broken \(env dev\): template 'message' does not "
                                             r"parse \(line 1\)"):
        t.render("broken", "message", {"name": "x"}, arg="message")
    with pytest.raises(ConnectorError, match=r"template 'message' failed: ZeroDivisionError"):
        t.render("boom", "message", {"n": 0}, arg="message")
    with pytest.raises(ConnectorError, match=r"message must be a mapping of template variables"):
        not_a_mapping: Any = ["n"]
        t.render("boom", "message", not_a_mapping, arg="message")
    with pytest.raises(ConnectorError, match=r"unknown event 'nope' \(known: boom, broken"):
        t.render("nope", "message", {}, arg="message")
    with pytest.raises(ConnectorError, match=r"event declares no 'html' template \(declared: "
                                             r"message\)"):
        t.render("boom", "html", {}, arg="template")


def test_secrets_in_rendered_errors_are_redacted() -> None:
    # Jinja quotes a missing key in its message; a secret used as the key must not leak.
    t = templates({"e": {"message": "{{ d[k] }}"}}, secrets=("hunter22",))
    with pytest.raises(ConnectorError) as info:
        t.render("e", "message", {"d": {}, "k": "hunter22"}, arg="message")
    assert "hunter22" not in str(info.value)
    assert "uses '***', which is missing" in str(info.value)


# ---------------------------------------------------------------------------- validate

GOOD: dict[str, Any] = {
    "description": "transactional mail",
    "envs": {
        "dev": {"provider": "outbox", "maildir": ".ductwork/outbox", "from": "a@acme.test"},
        "prd": {"provider": "smtp", "host": "smtp.acme.test", "port": 587, "tls": "starttls",
                "username": "apikey", "password": "${env.SMTP_PASSWORD}",
                "from": "Acme <noreply@acme.test>"},
    },
    "events": {"welcome-email": {"subject": "Welcome, {{ name }}", "text": "Hi {{ name }}",
                                 "html": "<p>Hi {{ name }}</p>"}},
}


def problems(definition: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    out = []
    for config in definition["envs"].values():
        out += validate_resource("notification", definition, config)
    return out


def test_a_good_resource_has_no_problems() -> None:
    assert problems(GOOD) == []
    sms = {"envs": {"prd": {"provider": "twilio", "account_sid": "AC1",
                            "auth_token": "${env.TWILIO_TOKEN}", "from": "+15005550006"}},
           "events": {"code": {"message": "{{ code }}"}}}
    push = {"envs": {"android": {"provider": "fcm", "service_account": "keys/fcm.json"},
                     "web": {"provider": "webpush", "vapid_private_key": "${env.VAPID}",
                             "vapid_claims": {"sub": "mailto:ops@acme.test"}, "ttl": 60}},
            "events": {"ping": {"title": "Ping", "body": "{{ n }}"}}}
    assert problems(sms) == [] and problems(push) == []


def test_config_problems_point_at_the_key() -> None:
    bad = {"envs": {"prd": {"provider": "smtp", "hots": "x", "from": "nobody", "tls": "ssl",
                            "port": "25x", "username": "u", "password": "plain-text",
                            "verify": "no"}},
           "events": GOOD["events"]}
    got = dict(problems(bad))
    assert got[("envs", "prd", "hots")].startswith("unknown key 'hots' for provider 'smtp'")
    assert got[("envs", "prd", "hots")].endswith("did you mean 'host'?")
    assert got[("envs", "prd")] == "provider 'smtp' needs `host`"
    assert got[("envs", "prd", "from")] == "`from` is not an email address: 'nobody'"
    assert "one of starttls, tls, none" in got[("envs", "prd", "tls")]
    assert "whole positive number" in got[("envs", "prd", "port")]
    assert got[("envs", "prd", "password")].startswith("`password` is a secret")
    assert got[("envs", "prd", "verify")] == "`verify` must be true or false"


def test_provider_specific_config_problems() -> None:
    twilio = {"envs": {"prd": {"provider": "twilio", "account_sid": "AC1",
                               "auth_token": "${env.T}", "base_url": "ftp://x"}},
              "events": {"code": {"message": "x"}}}
    got = dict(problems(twilio))
    assert "exactly one of `from`" in got[("envs", "prd")]
    assert got[("envs", "prd", "base_url")] == "`base_url` must be an http(s) URL"
    fcm = {"envs": {"prd": {"provider": "fcm", "service_account": '{"private_key": "k"}'}},
           "events": {"ping": {"title": "x"}}}
    assert "never the JSON itself" in dict(problems(fcm))[("envs", "prd", "service_account")]
    web = {"envs": {"prd": {"provider": "webpush", "vapid_private_key": "A" * 43,
                            "vapid_claims": {"sub": "ops", "aud": "https://x"}}},
           "events": {"ping": {"title": "x"}}}
    got = dict(problems(web))
    assert got[("envs", "prd", "vapid_private_key")].startswith("`vapid_private_key` is a secret")
    assert "aud and exp are set per push service" in got[("envs", "prd", "vapid_claims")]


def test_event_problems_are_reported_once_with_their_path() -> None:
    definition = {
        "envs": {"dev": {}, "prd": {"provider": "twilio", "account_sid": "A",
                                    "auth_token": "${env.T}", "from": "+15005550006"}},
        "events": {
            "welcome-email": {"subject": "Hi {{ name", "txt": "x"},
            "code": {"message": "{{ code }}"},
            "empty": {"description": "nothing"},
            "odd": "just text",
        },
    }
    got = problems(definition)
    assert (("events", "welcome-email", "subject"),
            "template 'subject' does not parse (line 1): unexpected end of template, expected "
            "'end of print statement'.") in got
    assert (("events", "welcome-email", "txt"),
            "unknown key 'txt' in event 'welcome-email' (known: body, description, html, "
            "message, subject, text, title); did you mean 'text'?") in got
    assert (("events", "welcome-email"),
            "email event 'welcome-email' needs a `text` or `html` template") in got
    assert (("events", "empty"), "event 'empty' declares no template: give subject + "
                                 "text/html (email), message (sms) or title/body (push)") in got
    assert (("events", "odd"), "event 'odd' must be a mapping of templates (subject/text/html, "
                               "message, or title/body)") in got
    # twilio (prd) can only send SMS: every event needs a message template
    assert (("events", "welcome-email"), "event 'welcome-email' has no sms template (message), "
                                         "but provider 'twilio' (env prd) sends sms") in got
    assert not any(path == ("events", "code") for path, _ in got)
    # reported once, not once per env
    assert len([p for p in got if p[0] == ("events", "welcome-email", "txt")]) == 1


def test_validate_is_the_registered_function() -> None:
    assert validate(GOOD, GOOD["envs"]["prd"]) == []
