"""ductwork.util.suggest: the one did-you-mean of every layer."""

from __future__ import annotations

from ductwork.util.suggest import did_you_mean, suggest


def test_a_close_spelling_wins() -> None:
    assert suggest("chrage", ["charge", "refund"]) == "charge"
    assert suggest("zzz", ["charge", "refund"]) is None
    assert suggest(3, ["3"]) is None  # only text is compared


def test_the_fallbacks_find_what_a_plain_ratio_misses() -> None:
    assert suggest("EMAIL", ["email", "name"]) == "email"                 # another case
    assert suggest("chrage", ["charge-payment", "ship"]) == "charge-payment"  # a name part
    assert suggest("email; DROP TABLE users", ["email", "name"]) == "email"   # leading word


def test_the_cutoff_is_the_callers() -> None:
    assert suggest("abcde", ["abcxyzw"]) is None  # ratio 0.5
    assert suggest("abcde", ["abcxyzw"], cutoff=0.5) == "abcxyzw"


def test_did_you_mean_formats_or_is_empty() -> None:
    assert did_you_mean("chrage", ["charge"]) == "did you mean 'charge'?"
    assert did_you_mean("chrage", ["charge"], prefix="; ") == "; did you mean 'charge'?"
    assert did_you_mean("zzz", ["charge"], prefix="; ") == ""
