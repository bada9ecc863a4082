"""Did-you-mean: the known name closest to a mistyped one, and the hint that names it."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable


def suggest(word: object, candidates: Iterable[object], *, cutoff: float = 0.6) -> str | None:
    """The candidate closest to `word`, or None when none is close enough.

    Tried in order: a close spelling (difflib ratio >= cutoff); the same name in another case;
    a candidate one of whose -/_/. parts is close to the word ('chrage' -> 'charge-payment');
    a candidate close to the word's leading identifier ('email; DROP TABLE' -> 'email')."""
    if not isinstance(word, str):
        return None
    pool = sorted({str(c) for c in candidates})
    match = difflib.get_close_matches(word, pool, n=1, cutoff=cutoff)
    if match:
        return match[0]
    lowered = {c.lower(): c for c in pool}
    if word.lower() in lowered:
        return lowered[word.lower()]
    parts = {w: c for c in pool for w in re.split(r"[-_.]", c) if len(w) > 2}
    near = difflib.get_close_matches(word, list(parts), n=1, cutoff=0.75)
    if near:
        return parts[near[0]]
    lead = re.match(r"[A-Za-z_$][A-Za-z0-9_]*", word)
    if lead and lead.group(0) != word:
        match = difflib.get_close_matches(lead.group(0), pool, n=1, cutoff=cutoff)
        if match:
            return match[0]
    return None


def did_you_mean(word: object, candidates: Iterable[object], *, prefix: str = "",
                 cutoff: float = 0.6) -> str:
    """f"{prefix}did you mean 'x'?" when suggest() finds x, else "" (so `did_you_mean(...) or
    other_hint` reads well). prefix="; " makes the ending of a one-line error message."""
    match = suggest(word, candidates, cutoff=cutoff)
    return f"{prefix}did you mean '{match}'?" if match is not None else ""
