"""Tracking tokens: what a token says, and that no altered or foreign token is accepted."""

from __future__ import annotations

import base64

import pytest

from missiva.reports.tokens import OPEN, InvalidToken, TokenSigner, derive_key

SIGNER = TokenSigner(derive_key("secret one"))


def test_tokens_round_trip_mailing_recipient_and_link():
    tokens = SIGNER.links_for(42, 1_000_003, [0, 7, OPEN])
    read = [SIGNER.read(t) for t in tokens]
    assert [(t.mailing_id, t.recipient_id, t.link) for t in read] == [
        (42, 1_000_003, 0),
        (42, 1_000_003, 7),
        (42, 1_000_003, OPEN),
    ]
    assert read[2].is_open and not read[0].is_open
    assert SIGNER.make(42, 1_000_003, 7) == tokens[1]
    assert len(tokens[1]) <= 24 and all(c.isalnum() or c in "-_" for c in tokens[1])


def test_every_single_character_change_is_refused():
    token = SIGNER.make(9, 12345, 3)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for position in range(len(token)):
        for replacement in alphabet:
            if replacement == token[position]:
                continue
            altered = token[:position] + replacement + token[position + 1 :]
            with pytest.raises(InvalidToken):
                SIGNER.read(altered)


def test_a_token_pointing_to_another_link_or_recipient_cannot_be_built_without_the_key():
    raw = base64.urlsafe_b64decode(SIGNER.make(9, 5, 0) + "==")
    payload, tag = raw[:-10], raw[-10:]
    forged = payload[:-1] + bytes([payload[-1] + 1])  # link 0 -> link 1, same tag
    token = base64.urlsafe_b64encode(forged + tag).rstrip(b"=").decode()
    with pytest.raises(InvalidToken, match="signature"):
        SIGNER.read(token)
    with pytest.raises(InvalidToken, match="signature"):
        TokenSigner(derive_key("another instance")).read(SIGNER.make(9, 5, 0))


@pytest.mark.parametrize("bad", ["", "x", "!!!!", "a" * 200, "é" * 20, SIGNER.make(1, 1, 1) + "A"])
def test_malformed_tokens_name_the_problem(bad):
    with pytest.raises(InvalidToken) as info:
        SIGNER.read(bad)
    assert "token" in str(info.value)
