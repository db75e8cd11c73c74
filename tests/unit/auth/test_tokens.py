from __future__ import annotations

import stat
from pathlib import Path

from modelpier.auth import tokens
from modelpier.auth.secret import load_or_create_secret


def test_tokens_are_random_prefixed_and_stored_only_as_an_hmac() -> None:
    a, b = tokens.new_token(), tokens.new_token()
    assert a != b
    assert a.startswith("pier_")
    assert len(a) > 40
    h = tokens.hash_token(b"k", a)
    assert a not in h
    assert len(h) == 64
    assert tokens.matches(b"k", a, h)
    assert not tokens.matches(b"other", a, h)
    assert tokens.display_prefix(a) == a[:13]
    assert tokens.new_token(tokens.KEY_PREFIX).startswith("pierk_")


def test_implausible_tokens_are_rejected_before_any_lookup() -> None:
    assert not tokens.plausible("abc")
    assert not tokens.plausible("pier_" + "x" * 300)
    assert not tokens.plausible("pier_\n")
    assert tokens.plausible("pier_abc")


def test_the_server_secret_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    first = load_or_create_secret(tmp_path, None)
    assert load_or_create_secret(tmp_path, None) == first
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600
    assert load_or_create_secret(tmp_path, "configured") == b"configured"
