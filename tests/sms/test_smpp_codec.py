"""PDU codec, receipt parsing and addresses, without a network."""

from __future__ import annotations

import pytest

from missiva.delivery.sms.addresses import InvalidAddress, recipient, sender
from missiva.delivery.sms.events import InboundSms, ReceiptState
from missiva.delivery.sms.smpp.pdu import (
    Bind,
    CommandId,
    Pdu,
    PduError,
    ShortMessage,
    Tag,
    decode,
    decode_message_id,
    encode_message_id,
)
from missiva.delivery.sms.smpp.receipts import is_receipt, parse_inbound, parse_receipt


def test_submit_sm_round_trips_with_tlvs() -> None:
    sm = ShortMessage(
        "Missiva",
        "393331234567",
        b"\x00hello",
        source_addr_ton=5,
        esm_class=0x40,
        registered_delivery=1,
        data_coding=8,
        tlvs=((0x1403, b"\xaa"),),
    )
    pdu = decode(Pdu(CommandId.SUBMIT_SM, 0, 42, sm.encode()).encode())
    assert (pdu.command_id, pdu.sequence_number) == (CommandId.SUBMIT_SM, 42)
    assert ShortMessage.decode(pdu.body) == sm
    assert decode_message_id(encode_message_id("5f0a")) == "5f0a"
    assert Bind.decode(Bind("missiva", "secret").encode()) == Bind("missiva", "secret")


@pytest.mark.parametrize(
    ("build", "complaint"),
    [
        (lambda: Bind("a-system-id-too-long", "pw").encode(), "system_id"),
        (lambda: Bind("sys", "password-too-long").encode(), "password"),
        (lambda: ShortMessage("Missiva", "3933€", b"").encode(), "destination_addr"),
        (lambda: ShortMessage("Missiva", "39", b"x" * 255).encode(), "254"),
        (lambda: ShortMessage.decode(b"\x00\x05\x00abc"), "source_addr"),
        (lambda: decode(b"\x00\x00\x00\x20" + b"\x00" * 12), "command_length"),
        (lambda: ShortMessage.decode(ShortMessage("a", "b", b"hi").encode()[:-1]), "short_message"),
    ],
)
def test_malformed_pdus_are_refused_naming_the_field(build: object, complaint: str) -> None:
    with pytest.raises(PduError, match=complaint):
        build()  # type: ignore[operator]


def test_text_only_receipt_is_parsed() -> None:
    text = (
        b"id:0123456789 sub:001 dlvrd:000 submit date:2401011200 done date:2401011201 stat:EXPIRED"
        b" err:000 Text:hi"
    )
    receipt = parse_receipt(ShortMessage("393331234567", "Missiva", text, esm_class=0x04), "smpp")
    assert (receipt.message_id, receipt.state, receipt.err) == ("0123456789", ReceiptState.EXPIRED, "000")


def test_receipt_tlvs_win_over_the_text() -> None:
    sm = ShortMessage(
        "393331234567",
        "Missiva",
        b"id:1 stat:DELIVRD err:000",
        esm_class=0x04,
        tlvs=(
            (Tag.RECEIPTED_MESSAGE_ID, b"ab12\x00"),
            (Tag.MESSAGE_STATE, b"\x08"),
            (Tag.NETWORK_ERROR_CODE, b"\x03\x00\x0b"),
        ),
    )
    receipt = parse_receipt(sm)
    assert (receipt.message_id, receipt.state, receipt.raw_status, receipt.err) == (
        "ab12",
        ReceiptState.REJECTED,
        "REJECTD",
        "3:11",
    )


def test_mobile_originated_text_is_decoded_for_its_data_coding() -> None:
    mo = ShortMessage("393331234567", "4321", "Arrêt".encode("utf-16-be"), data_coding=8)
    assert not is_receipt(mo)
    assert parse_inbound(mo, "smpp") == InboundSms("393331234567", "4321", "Arrêt", "smpp")
    gsm = ShortMessage("393331234567", "4321", b"\x05t\x1be", data_coding=0)
    assert parse_inbound(gsm).text == "ét€"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Missiva", ("Missiva", 5, 0)),
        ("4321", ("4321", 3, 0)),
        ("+393331234567", ("393331234567", 1, 1)),
        ("393331234567", ("393331234567", 1, 1)),
        ("Shop & Co", ("Shop & Co", 5, 0)),
    ],
)
def test_sender_ids_get_their_type_of_number(value: str, expected: tuple[str, int, int]) -> None:
    address = sender(value)
    assert (address.value, address.ton, address.npi) == expected


@pytest.mark.parametrize("value", ["TooLongSenderName", "", "Ciao!", "Caffè"])
def test_invalid_sender_ids_are_refused(value: str) -> None:
    with pytest.raises(InvalidAddress):
        sender(value)


def test_recipients_must_be_international_numbers() -> None:
    assert recipient("+39 333 1234567").value == "393331234567"
    with pytest.raises(InvalidAddress, match=r"E\.164"):
        recipient("0331234567x")
