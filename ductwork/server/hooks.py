"""POST /hooks/{product}/{workflow}: a signed webhook declared in a product file starts a run."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from ductwork.dsl.secrets import SECRET_REF
from ductwork.errors import ConfigurationError
from ductwork.server.api.common import ErrorBody, ductwork, out
from ductwork.util.durations import to_ms

log = logging.getLogger("ductwork.server.hooks")
router = APIRouter(tags=["webhooks"])
DEFAULT_SIGNATURE_HEADER = "X-Ductwork-Signature"
DEFAULT_IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_BODY = 1 << 20  # 1 MiB: a webhook carries an event, not a file
TERMINAL = ("completed", "failed", "rolled_back", "cancelled")


DEFAULT_TOLERANCE_S = 300.0


def signature(secret: str, body: bytes, timestamp: str | None = None) -> str:
    """The signature header's value for `body`: sha256=<hex HMAC-SHA256 of the raw body>, or of
    `<timestamp>.<body>` for a hook with a timestamp_header (so a replay cannot change it)."""
    signed = body if timestamp is None else timestamp.encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def _count(request: Request, product: str, workflow: str, outcome: str) -> None:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.webhooks.labels(product, workflow, outcome).inc()


def _field(data: Any, path: str) -> Any:
    """`a.b.c` inside the JSON body, or None."""
    for part in path.split("."):
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


@router.post(
    "/hooks/{product}/{workflow}",
    summary="Start a run from a webhook (HMAC-SHA256 signed; no API token)",
    status_code=202,
    responses={200: {"description": "a repeated delivery: the run it started has ended"},
               202: {"description": "the run started (or, repeated, is still going)"},
               400: {"model": ErrorBody, "description": "not JSON, no idempotency key, or "
                     "an input the workflow refuses"},
               401: {"model": ErrorBody, "description": "missing or wrong signature, or a "
                     "timestamp outside the hook's tolerance: nothing started"},
               404: {"model": ErrorBody, "description": "no webhook declared for this "
                     "workflow"},
               413: {"model": ErrorBody, "description": "a body over 1 MiB"},
               503: {"model": ErrorBody, "description": "the hook's secret is not set here"}},
)
async def webhook(request: Request, product: str, workflow: str) -> JSONResponse:
    dw = ductwork(request)
    spec = dw.runtime.products.get(product)
    hooks: dict[str, Any] = getattr(spec, "webhooks", None) or {}
    hook = hooks.get(workflow)
    if hook is None:
        raise HTTPException(404, f"no webhook for {product}/{workflow}: declare it under "
                                 f"webhooks: in the product file of {product}")
    body = await request.body()
    if len(body) > MAX_BODY:
        _count(request, product, workflow, "rejected")
        raise HTTPException(413, f"webhook body larger than {MAX_BODY} bytes")
    secret = _secret(dw, hook, product, workflow)
    stamp = _timestamp(request, hook, product, workflow)
    header = str(hook.get("signature_header") or DEFAULT_SIGNATURE_HEADER)
    given = request.headers.get(header, "").strip()
    if not given.startswith("sha256="):
        given = "sha256=" + given  # a bare hex digest is accepted too
    if not hmac.compare_digest(given.lower(), signature(secret, body, stamp)):
        _count(request, product, workflow, "bad_signature")
        what = "the raw body" if stamp is None else "<timestamp>.<raw body>"
        raise HTTPException(401, f"missing or wrong {header} signature: send sha256=<hex "
                                 f"HMAC-SHA256 of {what} with the hook's secret>")
    try:
        data = json.loads(body) if body.strip() else None
    except ValueError as e:
        _count(request, product, workflow, "rejected")
        raise HTTPException(400, f"the webhook body is not JSON ({e})") from None
    try:
        key = _idempotency_key(request, hook, data)
    except HTTPException:
        _count(request, product, workflow, "rejected")
        raise
    try:
        res = await dw.workflows.execute(
            product, str(hook["env"]), workflow, data, idempotency_key=key, timeout=0,
            context={"via": "webhook"})
    except ConfigurationError:
        _count(request, product, workflow, "rejected")
        raise
    _count(request, product, workflow, "started")
    body_out = {"workflow_id": res.workflow_id, "status": res.status}
    return JSONResponse(out(request, body_out),
                        status_code=200 if res.status in TERMINAL else 202)


def _secret(dw: Any, hook: dict[str, Any], product: str, workflow: str) -> str:
    ref = SECRET_REF.fullmatch(str(hook.get("secret", "")))
    if ref is None:  # the compiler refuses this; a hand-built spec might not
        raise ConfigurationError(f"webhook {product}/{workflow}: secret must be a "
                                 "${secrets.NAME} reference")
    try:
        return str(dw.secret(ref.group(1)))
    except ConfigurationError:
        log.error("webhook %s/%s: secret %s is not set; deliveries are refused", product,
                  workflow, ref.group(1))
        raise HTTPException(503, f"the secret of webhook {product}/{workflow} is not set on "
                                 "this server") from None


def _timestamp(request: Request, hook: dict[str, Any], product: str, workflow: str
               ) -> str | None:
    """The delivery's timestamp header (for a hook that has one), refused with 401 when it is
    missing, not Unix seconds, or further from this server's clock than the tolerance: a
    captured delivery cannot be sent again later to start another run."""
    name = hook.get("timestamp_header")
    if not name:
        return None
    text = request.headers.get(str(name), "").strip()
    try:
        sent = float(text) if text.isdigit() else None
    except ValueError:  # digits beyond float range
        sent = None
    if sent is None:
        _count(request, product, workflow, "bad_signature")
        raise HTTPException(401, f"missing or malformed {name} header: send the Unix time in "
                                 "seconds of the delivery, and sign <timestamp>.<raw body>")
    tolerance = hook.get("tolerance")
    window = (DEFAULT_TOLERANCE_S if tolerance is None
              else to_ms(tolerance, f"webhook {product}/{workflow} tolerance") / 1000)
    if abs(time.time() - sent) > window:
        _count(request, product, workflow, "stale")
        raise HTTPException(401, f"the {name} timestamp is more than {window:g}s from this "
                                 "server's time: a late or replayed delivery is refused (check "
                                 "the sender's clock)")
    return text


def _idempotency_key(request: Request, hook: dict[str, Any], data: Any) -> str | None:
    """The configured body field, else the configured header (default Idempotency-Key)."""
    field = hook.get("idempotency_field")
    if field:
        value = _field(data, str(field))
        if value is None or isinstance(value, dict | list) or value == "":
            raise HTTPException(400, f"the webhook body has no {field!r} (this hook's "
                                     "idempotency field)")
        return str(value)
    header = str(hook.get("idempotency_header") or DEFAULT_IDEMPOTENCY_HEADER)
    value = request.headers.get(header)
    return value.strip() or None if value is not None else None
