"""Secret redaction: every form a secret takes on the wire, and the HTTP client's log lines."""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import urllib.parse
import weakref

MASK = "***"
# Base64 forms are matched by their stable middle part; shorter parts would match by chance.
_MIN_BASE64 = 6
_URLSAFE = str.maketrans("+/", "-_")
_PERCENT = re.compile(r"%[0-9A-F]{2}")


def _base64_cores(raw: bytes) -> set[str]:
    """The base64 characters that encode only the secret's bytes, at each of the three
    alignments it can have inside a longer encoded text (`user:pass` in a Basic header puts
    the password at offset len('user:') % 3): those characters are the same whatever comes
    before or after the secret."""
    out: set[str] = set()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode("ascii")
        start = -(-8 * shift // 6)  # the first character that starts inside the secret
        end = 8 * (shift + len(raw)) // 6  # past the last one that ends inside it
        core = encoded[start:end]
        if len(core) >= _MIN_BASE64:
            out |= {core, core.translate(_URLSAFE)}
    whole = base64.b64encode(raw).decode("ascii")
    if len(whole) >= _MIN_BASE64:
        out |= {whole, whole.translate(_URLSAFE), whole.rstrip("="),
                whole.translate(_URLSAFE).rstrip("=")}
    return out


def secret_forms(value: str) -> set[str]:
    """The texts that reveal `value`: itself, URL-encoded (quote, quote_plus, lower-case
    escapes), JSON-escaped, and base64 (alone or inside a longer encoded text)."""
    forms = {value}
    for quoted in (urllib.parse.quote(value, safe=""), urllib.parse.quote(value),
                   urllib.parse.quote_plus(value), urllib.parse.quote(value, safe="/:@")):
        forms |= {quoted, _PERCENT.sub(lambda m: m.group(0).lower(), quoted)}
    forms |= {json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    forms |= _base64_cores(value.encode("utf-8"))
    return {f for f in forms if f}


class SecretSet:
    """Secret values resolved so far; anything leaving the engine passes through redact(),
    which masks each secret in every form secret_forms() lists."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._forms: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        _LIVE.add(self)
        _install_log_filter()

    def add(self, value: str) -> None:
        if value and len(value) >= 4 and value not in self._values:
            self._values.add(value)
            self._forms |= secret_forms(value)
            alts = sorted(self._forms, key=len, reverse=True)  # longest first: no partial mask
            self._pattern = re.compile("|".join(re.escape(v) for v in alts))

    def redact(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    def __bool__(self) -> bool:
        return bool(self._values)


# Every SecretSet alive, for the log filter: the HTTP client logs below any one connector.
_LIVE: weakref.WeakSet[SecretSet] = weakref.WeakSet()

# -- the HTTP client's loggers -----------------------------------------------------------------

# httpx logs each request's URL at INFO, httpcore its connections at DEBUG; a URL may carry a
# key in its query string or a password in its user info.
HTTP_LOGGERS = ("httpx", "httpcore", "httpcore.connection", "httpcore.http11",
                "httpcore.http2", "httpcore.proxy", "httpcore.socks")
_QUERY_VALUE = re.compile(r"([?&;][^=&#\s\"'<>]*=)[^&#\s\"'<>]*")
_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/@\s:\"']*:)[^/@\s\"']*@", re.IGNORECASE)


def redact_url_text(text: str) -> str:
    """Text with every URL query value and user-info password masked."""
    return _USERINFO.sub(rf"\g<1>{MASK}@", _QUERY_VALUE.sub(rf"\g<1>{MASK}", text))


class _RedactingFilter(logging.Filter):
    """Rewrites a record of the HTTP client: query values and passwords in URLs masked, and
    every known secret in every form."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a malformed record: let logging report it as it would
            return True
        clean = redact_url_text(text)
        for secrets in list(_LIVE):
            clean = secrets.redact(clean)
        if clean != text:
            record.msg, record.args = clean, None
        return True


_FILTER = _RedactingFilter()
_installed = False
_lock = threading.Lock()


def _install_log_filter() -> None:
    global _installed
    if _installed:
        return
    with _lock:
        for name in HTTP_LOGGERS:
            logger = logging.getLogger(name)
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)
        _installed = True
