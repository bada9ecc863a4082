"""CSRF protection of the UI's forms: a per-browser random cookie and an HMAC of it in each form.

A page sets the `ductwork_csrf` cookie (SameSite=Strict, HttpOnly) when the browser has none and
puts HMAC(server key, cookie) in every form. A POST must carry both, matching, and when the
browser says where it comes from (Origin, else Referer) it must be this server. Another site
can neither read the cookie nor compute the form value, and a strict cookie is not even sent
with its requests.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from fastapi.responses import Response

COOKIE = "ductwork_csrf"
FIELD = "csrf"


class Csrf:
    """Tokens for one server process (a restart asks the browser for a fresh page)."""

    def __init__(self, key: bytes | None = None) -> None:
        self.key = key or secrets.token_bytes(32)

    def _sign(self, nonce: str) -> str:
        return hmac.new(self.key, nonce.encode(), hashlib.sha256).hexdigest()

    def token(self, request: Request, response_cookies: dict[str, str]) -> str:
        """The form value for this browser; a new cookie goes into `response_cookies`."""
        nonce = request.cookies.get(COOKIE)
        if not nonce or len(nonce) > 100:
            nonce = secrets.token_urlsafe(24)
            response_cookies[COOKIE] = nonce
        return self._sign(nonce)

    def check(self, request: Request, form: dict[str, str]) -> None:
        """Raise 403 unless the POST comes from one of our pages."""
        nonce = request.cookies.get(COOKIE)
        sent = form.get(FIELD, "")
        if not nonce or not sent or not hmac.compare_digest(self._sign(nonce), sent):
            raise HTTPException(403, "this form has expired or did not come from this server: "
                                     "reload the page and try again")
        origin = request.headers.get("origin") or request.headers.get("referer")
        if origin and origin != "null":
            host = urlsplit(origin).netloc
            if host and host != request.headers.get("host"):
                raise HTTPException(403, f"a form posted from {host} is refused (cross-site)")


def set_cookies(response: Response, cookies: dict[str, str], secure: bool) -> None:
    for name, value in cookies.items():
        response.set_cookie(name, value, httponly=True, samesite="strict", secure=secure,
                            path="/")
