"""The SMPP client against a real SMSC simulator process (tests/sms/smpp_peer.py)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from missiva.delivery.sms.encoding import analyse
from missiva.delivery.sms.events import InboundSms, Receipt, ReceiptState
from missiva.delivery.sms.keywords import is_stop
from missiva.delivery.sms.smpp.client import SmppClient, SmppConnectError, SmppSettings
from missiva.delivery.sms.smpp.pdu import Status
from missiva.delivery.sms.transport import NotSent, Rejected, SubmitResult, Uncertain

if TYPE_CHECKING:
    from .conftest import PeerProcess

pytestmark = pytest.mark.anyio


def settings(peer: PeerProcess, **overrides: object) -> SmppSettings:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": peer.port,
        "system_id": "missiva",
        "password": "secret",
        "reconnect_min": 0.05,
        "response_timeout": 2.0,
    }
    values.update(overrides)
    return SmppSettings(**values)  # type: ignore[arg-type]


class Events:
    """Collects what the client hands to on_event, and lets a test wait for a number of them."""

    def __init__(self) -> None:
        self.items: list[Receipt | InboundSms] = []
        self.changed = asyncio.Event()

    async def __call__(self, event: Receipt | InboundSms) -> None:
        self.items.append(event)
        self.changed.set()

    async def wait_for(self, kind: type, count: int) -> list:
        async with asyncio.timeout(5):
            while len(found := [e for e in self.items if isinstance(e, kind)]) < count:
                self.changed.clear()
                await self.changed.wait()
        return found


async def test_200_character_text_with_emoji_arrives_whole_as_ucs2_parts(smpp_peer: PeerProcess) -> None:
    # The emoji sits on UTF-16 units 66-67, across the first 67-unit boundary: it must move whole to part 2.
    text = "Ciao Maria, " + "o" * 54 + "🎉" + " saldi fino al 50% su tutta la collezione!".ljust(133, ".")
    assert len(text) == 200
    # 199 BMP characters + 1 surrogate pair = 201 units; parts of 67 units: 66 | 67 | 67 | 1.
    assert analyse(text).segments == 4

    async with SmppClient(settings(smpp_peer)) as client:
        result = await client.submit("m-1", "+393331234567", "Missiva", text)

    assert result.segments == 4 and len(set(result.message_ids)) == 4
    assert result.encoding == "ucs2"
    [record] = smpp_peer.records()
    assert record["text"] == text
    assert record["data_coding"] == 8
    assert record["parts"] == 4
    assert "".join(record["part_texts"]) == text  # every part decodes on its own
    assert record["message_ids"] == result.message_ids
    assert record["source"] == "Missiva" and record["dest"] == "393331234567"


async def test_gsm_extension_characters_count_double_and_are_not_split(smpp_peer: PeerProcess) -> None:
    text = "a" * 152 + "€" + "{b}" * 3
    analysis = analyse(text)
    assert (analysis.encoding, analysis.length_units, analysis.segments) == ("gsm7", 152 + 2 + 9 + 6, 2)

    async with SmppClient(settings(smpp_peer)) as client:
        result = await client.submit("m-2", "+393331234567", "+390212345678", text)

    [record] = smpp_peer.records()
    assert result.segments == 2
    assert record["data_coding"] == 0
    assert record["part_texts"] == ["a" * 152, "€" + "{b}" * 3]
    assert record["text"] == text
    assert record["source"] == "390212345678"


async def test_smsc_dropping_the_connection_mid_mailing_loses_and_duplicates_nothing(
    dropping_peer: PeerProcess,
) -> None:
    refs = [f"ref-{n:03d}" for n in range(100)]
    sent: dict[str, SubmitResult] = {}
    uncertain: set[str] = set()
    attempts: dict[str, int] = dict.fromkeys(refs, 0)

    async with SmppClient(settings(dropping_peer, password="any", window=8)) as client:

        async def deliver(ref: str) -> None:
            # The ledger's contract: retry NotSent, never resend Uncertain.
            while True:
                attempts[ref] += 1
                try:
                    sent[ref] = await client.submit(ref, "+393330000001", "Missiva", f"Offerta {ref}")
                    return
                except NotSent:
                    await asyncio.sleep(0.05)
                except Uncertain:
                    uncertain.add(ref)
                    return

        await asyncio.gather(*(deliver(ref) for ref in refs))
        reconnects = client.reconnects

    received = [str(record["text"]).removeprefix("Offerta ") for record in dropping_peer.records()]
    assert reconnects == 1
    assert len(received) == len(set(received)), "a message reached the SMSC twice"
    assert set(sent) <= set(received), "a message reported sent never arrived"
    assert set(received) - set(sent) <= uncertain
    assert set(sent) | uncertain == set(refs), "a message was skipped"
    assert not set(sent) & uncertain
    # The 37th submit was taken by the SMSC and never answered: uncertain, and really there.
    assert uncertain & set(received)
    assert 1 <= len(uncertain) <= 8  # at most one window in flight when the line dropped


async def test_receipts_map_to_ledger_states(smpp_peer: PeerProcess) -> None:
    events = Events()
    expected = {
        "+393330000001": ReceiptState.DELIVERED,
        "+393330000009": ReceiptState.UNDELIVERABLE,
        "+393330000008": ReceiptState.EXPIRED,
        "+393330000007": ReceiptState.REJECTED,
    }
    async with SmppClient(settings(smpp_peer), on_event=events) as client:
        ids = {
            (await client.submit(f"r-{dest}", dest, "Missiva", "Hello")).message_ids[0]: state
            for dest, state in expected.items()
        }
        receipts = await events.wait_for(Receipt, 4)

    assert {r.message_id: r.state for r in receipts} == ids
    assert {r.recipient for r in receipts} == {d.removeprefix("+") for d in expected}
    undeliverable = next(r for r in receipts if r.state is ReceiptState.UNDELIVERABLE)
    assert (undeliverable.raw_status, undeliverable.err) == ("UNDELIV", "001")


async def test_stop_reply_is_recognised_as_unsubscribe(smpp_peer: PeerProcess) -> None:
    events = Events()
    unsubscribed: set[str] = set()

    async def on_event(event: Receipt | InboundSms) -> None:
        if isinstance(event, InboundSms) and is_stop(event.text):
            unsubscribed.add(event.source)
        await events(event)

    async with SmppClient(settings(smpp_peer), on_event=on_event):
        smpp_peer.command("mo 393331112222 4321 Arrêt !")
        smpp_peer.command("mo 393339998888 4321 Alt er fint, takk")
        inbound = await events.wait_for(InboundSms, 2)

    assert {m.text for m in inbound} == {"Arrêt !", "Alt er fint, takk"}
    assert unsubscribed == {"393331112222"}


async def test_failing_receipt_handler_leaves_the_receipt_with_the_smsc(smpp_peer: PeerProcess) -> None:
    async def broken(event: Receipt | InboundSms) -> None:
        raise RuntimeError("ledger unavailable")

    async with SmppClient(settings(smpp_peer), on_event=broken) as client:
        await client.submit("r-1", "+393330000001", "Missiva", "Hello")
        async with asyncio.timeout(5):
            while not smpp_peer.records("deliver_sm_refused"):
                await asyncio.sleep(0.02)

    assert smpp_peer.records("deliver_sm_refused")[0]["status"] == Status.RX_T_APPN


async def test_refused_destination_is_rejected_with_the_smpp_status(smpp_peer: PeerProcess) -> None:
    async with SmppClient(settings(smpp_peer)) as client:
        with pytest.raises(Rejected) as caught:
            await client.submit("x-1", "+393330001000", "Missiva", "Hello")
    assert caught.value.command_status == Status.RINVDSTADR
    assert smpp_peer.records() == []


async def test_wrong_password_fails_the_bind(smpp_peer: PeerProcess) -> None:
    with pytest.raises(SmppConnectError) as caught:
        await SmppClient(settings(smpp_peer, password="wrong")).start()
    assert caught.value.command_status == Status.RINVPASWD


async def test_unreachable_smsc_reports_not_sent(smpp_peer: PeerProcess) -> None:
    client = SmppClient(settings(smpp_peer, connect_wait=0.3))
    await client.start()
    smpp_peer.stop()
    async with asyncio.timeout(5):
        while client.bound:  # until then a submit would be written into a dying socket: Uncertain
            await asyncio.sleep(0.01)
    try:
        with pytest.raises(NotSent):
            await client.submit("n-1", "+393330000001", "Missiva", "Hello")
    finally:
        await client.close()
    assert smpp_peer.records() == []


async def test_client_rebinds_after_the_smsc_drops_every_session(smpp_peer: PeerProcess) -> None:
    async with SmppClient(settings(smpp_peer)) as client:
        await client.submit("d-1", "+393330000001", "Missiva", "before")
        smpp_peer.command("drop")
        async with asyncio.timeout(5):
            while client.bound and client.reconnects == 0:
                await asyncio.sleep(0.001)
        # Submitted while the client is down or rebinding: it waits for the new bind, then goes.
        result = await client.submit("d-2", "+393330000001", "Missiva", "after")
        assert client.reconnects == 1
    assert result.message_ids
    assert [r["text"] for r in smpp_peer.records()] == ["before", "after"]


async def test_silent_smsc_is_detected_by_enquire_link_and_replaced(smpp_peer: PeerProcess) -> None:
    fast = settings(smpp_peer, enquire_link_interval=0.1, response_timeout=0.3)
    async with SmppClient(fast) as client:
        smpp_peer.command("mute")
        async with asyncio.timeout(5):
            while client.reconnects == 0:
                await asyncio.sleep(0.02)
        result = await client.submit("k-1", "+393330000001", "Missiva", "still here")
    assert [r["text"] for r in smpp_peer.records()] == ["still here"]
    assert result.message_ids == smpp_peer.records()[0]["message_ids"]


async def test_throttled_submits_are_retried_then_given_up_as_not_sent(smpp_peer: PeerProcess) -> None:
    async with SmppClient(settings(smpp_peer, throttle_retries=2, throttle_backoff=0.01)) as client:
        smpp_peer.command("throttle 2")
        accepted = await client.submit("t-1", "+393330000001", "Missiva", "third time lucky")
        smpp_peer.command("throttle 3")
        with pytest.raises(NotSent, match="busy"):
            await client.submit("t-2", "+393330000001", "Missiva", "never taken")
    assert [r["text"] for r in smpp_peer.records()] == ["third time lucky"]
    assert accepted.message_ids == smpp_peer.records()[0]["message_ids"]
