"""Which inbound replies unsubscribe the number."""

from __future__ import annotations

import pytest

from missiva.delivery.sms.keywords import is_stop


@pytest.mark.parametrize(
    "reply",
    [
        "STOP",
        "stop",
        " Stop! ",
        "Arrêt",
        "ARRET.",
        "alt",
        "Cancella",
        "STOPP",
        "baja",
        "Unsubscribe",
        "stop all",
        "Arrêt svp",
        "s\u0301top",
    ],
)
def test_stop_requests_are_recognised(reply: str) -> None:
    assert is_stop(reply)


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "!!!",
        "Stopped by the shop today, great offers",
        "Alt er fint, takk",
        "non cancellate",
        "Stop, chi sei?",
    ],
)
def test_ordinary_replies_are_not_stop_requests(reply: str) -> None:
    assert not is_stop(reply)


def test_keywords_are_configurable_per_account() -> None:
    assert is_stop("Fine", keywords=("FINE", "STOP"))
    assert not is_stop("Arrêt", keywords=("STOP",))
    assert is_stop("Désabonner moi", keywords=("DESABONNER",))
    with pytest.raises(ValueError, match="no letters"):
        is_stop("stop", keywords=("!!",))
