"""A small SMSC simulator for the SMS tests and benchmark, run as its own process.

    python tests/sms/smpp_peer.py --port 0 --state-file F [--password P] [--drop-after N] [--stall S]

Prints the port it listens on (127.0.0.1) as its first stdout line. It binds transceivers, answers
submit_sm, reassembles concatenated parts (8-bit or 16-bit reference UDH) and appends each complete
message to the JSONL state file as ``{"type": "message", "source", "dest", "text", "parts",
"message_ids", "data_coding"}``. After each part it sends a delivery receipt (deliver_sm, esm_class
0x04, text form plus receipted_message_id / message_state TLVs) whose state depends on the last digit
of the destination: 9 UNDELIV, 8 EXPIRED, 7 REJECTD, anything else DELIVRD. A destination ending in
"000" is refused at submit time with ESME_RINVDSTADR.

``--drop-after N`` aborts the connection on the N-th submit_sm received, after recording it but before
answering: the client wrote it and never hears back. ``--stall S`` waits S seconds before answering
each submit_sm (a slow SMSC, so a test can act mid-mailing). Commands on stdin, one a line, each answered
"ok" once carried out:

- ``mo SOURCE DEST TEXT...`` sends a mobile-originated deliver_sm to every bound session;
- ``drop`` aborts every connection;
- ``throttle N`` refuses the next N submit_sm with ESME_RTHROTTLED;
- ``mute`` makes the current connections silent (read, never answered); new ones are served.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from pathlib import Path
from typing import TextIO

from missiva.delivery.sms.encoding import decode_payload, encode_parts, split_udh
from missiva.delivery.sms.smpp.pdu import (
    ESM_DELIVERY_RECEIPT,
    ESM_UDHI,
    Bind,
    CommandId,
    Pdu,
    PduError,
    ShortMessage,
    Status,
    Tag,
    encode_message_id,
    encode_system_id,
    read_pdu,
)

RECEIPT_RULES = {"9": ("UNDELIV", 5, "001"), "8": ("EXPIRED", 3, "000"), "7": ("REJECTD", 8, "002")}
DELIVERED = ("DELIVRD", 2, "000")


class Smsc:
    """State shared by all connections: counters, partial messages, the record file."""

    def __init__(
        self, record: TextIO, password: str | None, drop_after: int | None, stall: float = 0.0
    ) -> None:
        self.record = record
        self.stall = stall
        self.password = password
        self.drop_after = drop_after
        self.submits = 0
        self.ids = itertools.count(1)
        self.partial: dict[tuple[str, str, int, int], dict[int, tuple[bytes, str]]] = {}
        self.sessions: set[asyncio.StreamWriter] = set()
        self.deliver_sequence = itertools.count(1)
        self.outboxes: dict[asyncio.StreamWriter, list[bytes]] = {}
        self.muted: set[asyncio.StreamWriter] = set()
        self.throttle_next = 0
        # deliver_sm not yet acknowledged, per connection; like a real SMSC, those of a connection that
        # goes away are delivered again on the next bind.
        self.unacked: dict[asyncio.StreamWriter, dict[int, bytes]] = {}
        self.orphans: list[bytes] = []

    def write_record(self, entry: dict[str, object]) -> None:
        self.record.write(json.dumps(entry, ensure_ascii=False) + "\n")
        if entry["type"] != "message":  # messages are flushed with the response that confirms them
            self.record.flush()

    def send_deliver(self, writer: asyncio.StreamWriter, pdu: Pdu) -> None:
        """Send a deliver_sm and remember it until the client acknowledges it."""
        data = pdu.encode()
        self.unacked.setdefault(writer, {})[pdu.sequence_number] = data
        self.send(writer, data)

    def send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        """Queue output; everything queued in one loop iteration leaves in one write."""
        outbox = self.outboxes.get(writer)
        if outbox is None:
            outbox = self.outboxes[writer] = []
            asyncio.get_running_loop().call_soon(self.flush, writer)
        outbox.append(data)

    def flush(self, writer: asyncio.StreamWriter) -> None:
        """Records reach the file before the responses that confirm them reach the client."""
        self.record.flush()
        outbox = self.outboxes.pop(writer, None)
        if outbox and not writer.is_closing():
            writer.write(b"".join(outbox))

    def accept_part(self, sm: ShortMessage, message_id: str) -> None:
        """Store one part; record the whole message once every part is there."""
        payload = sm.payload
        concat = None
        if sm.esm_class & ESM_UDHI:
            concat, payload = split_udh(payload)
        if concat is None:
            self._complete(sm, [(payload, message_id)])
            return
        key = (sm.source_addr, sm.destination_addr, concat.ref, concat.total)
        parts = self.partial.setdefault(key, {})
        parts[concat.seq] = (payload, message_id)
        if len(parts) == concat.total:
            del self.partial[key]
            self._complete(sm, [parts[seq] for seq in sorted(parts)])

    def _complete(self, sm: ShortMessage, parts: list[tuple[bytes, str]]) -> None:
        text = decode_payload(b"".join(payload for payload, _ in parts), sm.data_coding)
        # Each part decoded on its own too: a split surrogate or escape pair shows up as U+FFFD here.
        part_texts = [decode_payload(payload, sm.data_coding) for payload, _ in parts]
        self.write_record(
            {
                "type": "message",
                "source": sm.source_addr,
                "dest": sm.destination_addr,
                "text": text,
                "parts": len(parts),
                "part_texts": part_texts,
                "message_ids": [mid for _, mid in parts],
                "data_coding": sm.data_coding,
            }
        )

    def receipt(self, sm: ShortMessage, message_id: str) -> Pdu:
        stat, state, err = RECEIPT_RULES.get(sm.destination_addr[-1:], DELIVERED)
        stamp = time.strftime("%y%m%d%H%M")
        text = (
            f"id:{message_id} sub:001 dlvrd:{'001' if state == 2 else '000'} submit date:{stamp} "
            f"done date:{stamp} stat:{stat} err:{err} text:"
        )
        body = ShortMessage(
            source_addr=sm.destination_addr,
            destination_addr=sm.source_addr,
            esm_class=ESM_DELIVERY_RECEIPT,
            short_message=text.encode("ascii"),
            tlvs=(
                (Tag.RECEIPTED_MESSAGE_ID, message_id.encode() + b"\x00"),
                (Tag.MESSAGE_STATE, bytes((state,))),
            ),
        ).encode()
        return Pdu(CommandId.DELIVER_SM, 0, next(self.deliver_sequence), body)

    def mobile_originated(self, source: str, dest: str, text: str) -> None:
        encoding, payloads = encode_parts(text)
        coding = 0 if encoding == "gsm7" else 8
        body = ShortMessage(
            source_addr=source, destination_addr=dest, data_coding=coding, short_message=payloads[0]
        )
        for writer in list(self.sessions):
            self.send_deliver(
                writer, Pdu(CommandId.DELIVER_SM, 0, next(self.deliver_sequence), body.encode())
            )
        self.write_record(
            {"type": "mo", "source": source, "dest": dest, "text": text, "sessions": len(self.sessions)}
        )

    def drop_all(self) -> None:
        for writer in list(self.sessions):
            self.flush(writer)
            writer.transport.abort()
        self.sessions.clear()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One ESME connection."""
        bound = False
        try:
            while True:
                pdu = await read_pdu(reader)
                if writer in self.muted:
                    continue
                if self.stall and pdu.command_id == CommandId.SUBMIT_SM:
                    await asyncio.sleep(self.stall)
                reply = self.answer(pdu, writer, bound)
                if reply is None:
                    return
                for out in reply:
                    if out.command_id == CommandId.DELIVER_SM:
                        self.send_deliver(writer, out)
                    else:
                        self.send(writer, out.encode())
                if pdu.command_id == CommandId.BIND_TRANSCEIVER and reply[0].command_status == Status.ROK:
                    bound = True
                    self.sessions.add(writer)
                    orphans, self.orphans = self.orphans, []
                    for data in orphans:  # receipts the previous connection never acknowledged
                        seq = int.from_bytes(data[12:16], "big")
                        self.unacked.setdefault(writer, {})[seq] = data
                        self.send(writer, data)
                if pdu.command_id == CommandId.UNBIND:
                    return
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, PduError):
            return
        finally:
            self.flush(writer)
            self.orphans.extend(self.unacked.pop(writer, {}).values())
            self.sessions.discard(writer)
            self.muted.discard(writer)
            writer.close()

    def answer(self, pdu: Pdu, writer: asyncio.StreamWriter, bound: bool) -> list[Pdu] | None:
        """PDUs to send back, or None to drop the connection."""
        seq = pdu.sequence_number
        if pdu.command_id == CommandId.BIND_TRANSCEIVER:
            if self.password is not None and Bind.decode(pdu.body).password != self.password:
                return [Pdu(CommandId.BIND_TRANSCEIVER_RESP, Status.RINVPASWD, seq)]
            return [Pdu(CommandId.BIND_TRANSCEIVER_RESP, Status.ROK, seq, encode_system_id("missiva-peer"))]
        if pdu.command_id == CommandId.SUBMIT_SM:
            if not bound:
                return [Pdu(CommandId.SUBMIT_SM_RESP, Status.RINVBNDSTS, seq)]
            if self.throttle_next > 0:
                self.throttle_next -= 1
                return [Pdu(CommandId.SUBMIT_SM_RESP, Status.RTHROTTLED, seq)]
            self.submits += 1
            sm = ShortMessage.decode(pdu.body)
            if sm.destination_addr.endswith("000"):
                return [Pdu(CommandId.SUBMIT_SM_RESP, Status.RINVDSTADR, seq)]
            message_id = f"{next(self.ids):x}"
            self.accept_part(sm, message_id)
            if self.submits == self.drop_after:
                self.flush(writer)
                writer.transport.abort()
                return None
            out = [Pdu(CommandId.SUBMIT_SM_RESP, Status.ROK, seq, encode_message_id(message_id))]
            if sm.registered_delivery & 0x01:
                out.append(self.receipt(sm, message_id))
            return out
        if pdu.command_id == CommandId.ENQUIRE_LINK:
            return [Pdu(CommandId.ENQUIRE_LINK_RESP, Status.ROK, seq)]
        if pdu.command_id == CommandId.UNBIND:
            return [Pdu(CommandId.UNBIND_RESP, Status.ROK, seq)]
        if pdu.is_response:
            if pdu.command_id == CommandId.DELIVER_SM_RESP:
                if pdu.command_status == Status.ROK:
                    self.unacked.get(writer, {}).pop(seq, None)
                else:
                    self.write_record({"type": "deliver_sm_refused", "status": pdu.command_status})
            return []
        return [Pdu(CommandId.GENERIC_NACK, Status.RINVCMDID, seq)]


async def read_commands(smsc: Smsc) -> None:
    """Obey ``mo`` and ``drop`` lines on stdin until it closes."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode():
        words = line.split(maxsplit=3)
        if words[:1] == ["mo"] and len(words) == 4:
            smsc.mobile_originated(words[1], words[2], words[3].rstrip("\n"))
        elif words[:1] == ["drop"]:
            smsc.drop_all()
        elif words[:1] == ["throttle"] and len(words) == 2:
            smsc.throttle_next = int(words[1])
        elif words[:1] == ["mute"]:
            smsc.muted |= smsc.sessions
        print("ok", flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--state-file", type=Path, required=True)
    parser.add_argument("--password")
    parser.add_argument("--drop-after", type=int)
    parser.add_argument("--stall", type=float, default=0.0)
    args = parser.parse_args()
    with args.state_file.open("a", encoding="utf-8") as record:
        smsc = Smsc(record, args.password, args.drop_after, args.stall)
        server = await asyncio.start_server(smsc.serve, "127.0.0.1", args.port)
        print(server.sockets[0].getsockname()[1], flush=True)
        await read_commands(smsc)  # the parent closing stdin is the signal to stop
        server.close()
        smsc.drop_all()
        await asyncio.sleep(0.05)  # let the connection handlers see the abort and return


if __name__ == "__main__":
    asyncio.run(main())
