"""Which keys hold a credential whatever their value: `password`, `apiKey`, `X-Auth-Token`."""

from __future__ import annotations

import re

# A key is a credential's when its last word is one of these, or its last two words one of the
# pairs; keys are compared as lower-case words ("clientSecret", "client-secret" and
# "CLIENT_SECRET" are all client secret), so every spelling a JSON body or header uses counts.
_WORDS = frozenset({"password", "passwd", "pwd", "secret", "token", "apikey", "authorization",
                    "cookie", "credentials", "passphrase"})
_PAIRS = frozenset({("api", "key"), ("private", "key"), ("access", "key"), ("secret", "key"),
                    ("signing", "key"), ("encryption", "key")})
_WORD_BREAK = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|[-_.\s]+")


def secret_key(key: str) -> bool:
    """Whether the value under `key` is a credential: `password`, `api_key`, `clientSecret`,
    `X-Auth-Token`, `stripe_secret_key` are; `token_count`, `secretary`, `keyboard` are not."""
    words = [w.lower() for w in _WORD_BREAK.split(key) if w]
    if not words:
        return False
    return words[-1] in _WORDS or tuple(words[-2:]) in _PAIRS
