"""Reading a deliver_sm: delivery receipt (text form and/or TLVs) or a mobile-originated message.

The receipt text is the de-facto format of SMPP 3.4 appendix B,
``id:IIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD err:E text:...``;
SMSCs differ in case and padding, so it is read field by field. The receipted_message_id and
message_state TLVs, when present, win over the text.
"""

from __future__ import annotations

import re

from missiva.delivery.sms.encoding import decode_payload, split_udh
from missiva.delivery.sms.events import InboundSms, Receipt, ReceiptState
from missiva.delivery.sms.smpp.pdu import (
    ESM_DELIVERY_RECEIPT,
    ESM_INTERMEDIATE_NOTIFICATION,
    ESM_TYPE_MASK,
    ESM_UDHI,
    ShortMessage,
    Tag,
)

#: Receipt ``stat:`` words (SMPP 3.4 appendix B) mapped to ledger states.
STAT_STATES: dict[str, ReceiptState] = {
    "DELIVRD": ReceiptState.DELIVERED,
    "EXPIRED": ReceiptState.EXPIRED,
    "UNDELIV": ReceiptState.UNDELIVERABLE,
    "REJECTD": ReceiptState.REJECTED,
    "DELETED": ReceiptState.REJECTED,
    "ACCEPTD": ReceiptState.UNKNOWN,
    "ENROUTE": ReceiptState.UNKNOWN,
    "UNKNOWN": ReceiptState.UNKNOWN,
}

#: message_state TLV values (section 5.2.28) mapped to ledger states.
MESSAGE_STATES: dict[int, ReceiptState] = {
    1: ReceiptState.UNKNOWN,  # ENROUTE
    2: ReceiptState.DELIVERED,
    3: ReceiptState.EXPIRED,
    4: ReceiptState.REJECTED,  # DELETED
    5: ReceiptState.UNDELIVERABLE,
    6: ReceiptState.UNKNOWN,  # ACCEPTED
    7: ReceiptState.UNKNOWN,
    8: ReceiptState.REJECTED,
}
_STATE_NAMES = {1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV", 6: "ACCEPTD"}
_STATE_NAMES |= {7: "UNKNOWN", 8: "REJECTD"}

_FIELD = re.compile(r"\b(id|stat|err):\s*(\S+)", re.IGNORECASE)


def is_receipt(sm: ShortMessage) -> bool:
    """A deliver_sm whose esm_class message type is an SMSC delivery receipt or notification."""
    return sm.esm_class & ESM_TYPE_MASK in (ESM_DELIVERY_RECEIPT, ESM_INTERMEDIATE_NOTIFICATION)


def parse_receipt(sm: ShortMessage, transport: str = "") -> Receipt:
    """The receipt carried by a deliver_sm (call only when :func:`is_receipt` holds)."""
    fields: dict[str, str] = {}
    text = sm.payload.decode("latin-1")
    for key, value in _FIELD.findall(text):
        fields.setdefault(key.lower(), value)
    message_id = fields.get("id", "")
    raw_status = fields.get("stat", "").upper()
    state = STAT_STATES.get(raw_status, ReceiptState.UNKNOWN)
    receipted = sm.tlv(Tag.RECEIPTED_MESSAGE_ID)
    if receipted:
        message_id = receipted.rstrip(b"\x00").decode("ascii", errors="replace")
    message_state = sm.tlv(Tag.MESSAGE_STATE)
    if message_state and len(message_state) == 1:
        state = MESSAGE_STATES.get(message_state[0], ReceiptState.UNKNOWN)
        raw_status = _STATE_NAMES.get(message_state[0], str(message_state[0]))
    err = fields.get("err")
    network_error = sm.tlv(Tag.NETWORK_ERROR_CODE)
    if network_error and len(network_error) == 3:
        err = f"{network_error[0]}:{int.from_bytes(network_error[1:], 'big')}"
    return Receipt(
        message_id=message_id,
        state=state,
        err=err,
        recipient=sm.source_addr,
        raw_status=raw_status,
        transport=transport,
    )


def parse_inbound(sm: ShortMessage, transport: str = "") -> InboundSms:
    """The text of a mobile-originated deliver_sm (one part; the header, if any, is dropped)."""
    payload = sm.payload
    if sm.esm_class & ESM_UDHI:
        _, payload = split_udh(payload)
    return InboundSms(
        source=sm.source_addr,
        dest=sm.destination_addr,
        text=decode_payload(payload, sm.data_coding),
        transport=transport,
    )
