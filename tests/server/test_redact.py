"""What the API and the UI show of a payload: credentials by key and known secret values masked."""

from __future__ import annotations

from ductwork import Ductwork
from ductwork.server.redact import MASK, redact


def test_redact_masks_credentials_and_known_secret_values_at_any_depth() -> None:
    dw = Ductwork(store="sqlite:///:memory:", secrets={"STRIPE": "sk_live_9f8e7d"})
    value = {"charge": {"apiKey": "sk_live_9f8e7d", "note": "paid with sk_live_9f8e7d",
                        "items": [{"clientSecret": "pi_1_secret_2", "qty": 2}],
                        "token": None, "tokens_used": 12}}
    assert redact(dw, value) == {"charge": {
        "apiKey": MASK, "note": "paid with ***",
        "items": [{"clientSecret": MASK, "qty": 2}], "token": None, "tokens_used": 12}}
