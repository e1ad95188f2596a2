"""Benchmark: submit_sm/s through the SMPP client, against a bare pipelined loop on the same peer.

    python bench/sms.py [--messages 20000] [--window 16] [--runs 3]
    python bench/sms.py --mailing [--messages 5000] [--database-url URL]

Starts the SMSC simulator (tests/sms/smpp_peer.py) as its own process; it answers every submit_sm
and sends a delivery receipt for each, which the sender must acknowledge. Figure: single-part
messages submitted through ``SmppClient.submit`` by ``window`` concurrent callers (text analysis,
PDU encoding, window, response matching and receipt parsing included), timed from the first submit
to the last submit_sm_resp. Ceiling: a bare asyncio protocol on a raw socket writing pre-encoded
submit_sm PDUs with the same window, reading responses and acknowledging receipts, against the same
peer in the same run. Both wait for every receipt before the next run starts. Medians of ``runs``.

``--mailing`` measures the whole SMS mailing pipeline instead of the client alone: an SMS mailing to
``messages`` subscribers (SQLite in a temporary directory unless ``--database-url``), run by
``SmsMailingSender`` from audience resolution to the last delivery receipt settled on the ledger
(claim, render with a merge tag, submit through the account's configured SMPP transport, record
outcomes and part ids, store and match receipts). The ceiling is the same bare loop.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from missiva.delivery.sms.events import InboundSms, Receipt  # noqa: E402
from missiva.delivery.sms.smpp.client import SmppClient, SmppSettings  # noqa: E402
from missiva.delivery.sms.smpp.pdu import (  # noqa: E402
    HEADER,
    Bind,
    CommandId,
    Pdu,
    ShortMessage,
)

PEER = ROOT / "tests" / "sms" / "smpp_peer.py"
DEST = "+393330000001"


def text(n: int) -> str:
    return f"Offerta n. {n}: sconto 20% su tutto, solo oggi!"


def start_peer(state_file: Path) -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    peer = subprocess.Popen(
        [sys.executable, str(PEER), "--port", "0", "--state-file", str(state_file)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert peer.stdout is not None
    return peer, int(peer.stdout.readline())


async def client_run(port: int, messages: int, window: int, offset: int) -> float:
    """submit_sm/s through SmppClient.submit with ``window`` callers."""
    receipts = 0
    all_receipts = asyncio.Event()

    async def on_event(event: Receipt | InboundSms) -> None:
        nonlocal receipts
        receipts += 1
        if receipts == messages:
            all_receipts.set()

    settings = SmppSettings("127.0.0.1", port, "bench", "bench", window=window, name="bench")
    async with SmppClient(settings, on_event=on_event) as client:
        numbers = iter(range(offset, offset + messages))

        async def caller() -> None:
            for n in numbers:
                await client.submit(f"b-{n}", DEST, "Missiva", text(n))

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(window)))
        elapsed = time.perf_counter() - started
        await asyncio.wait_for(all_receipts.wait(), 60)
    return messages / elapsed


class BareEsme(asyncio.Protocol):
    """Pre-encoded submit_sm PDUs, ``window`` in flight, receipts acknowledged; nothing else."""

    def __init__(self, pdus: list[bytes], window: int) -> None:
        self.pdus = pdus
        self.window = window
        self.buffer = bytearray()
        self.next = 0
        self.responses = 0
        self.receipts = 0
        self.bound = asyncio.get_running_loop().create_future()
        self.submitted = asyncio.get_running_loop().create_future()
        self.drained = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        bind = Pdu(CommandId.BIND_TRANSCEIVER, 0, 1, Bind("bench", "bench").encode())
        transport.write(bind.encode())

    def start(self) -> None:
        burst = self.pdus[: self.window]
        self.next = len(burst)
        assert self.transport is not None
        self.transport.write(b"".join(burst))

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        out: list[bytes] = []
        pos = 0
        while len(buffer) - pos >= 16:
            length, command_id, _, sequence = HEADER.unpack_from(buffer, pos)
            if len(buffer) - pos < length:
                break
            pos += length
            if command_id == CommandId.SUBMIT_SM_RESP:
                self.responses += 1
                if self.next < len(self.pdus):
                    out.append(self.pdus[self.next])
                    self.next += 1
                elif self.responses == len(self.pdus):
                    self.submitted.set_result(time.perf_counter())
            elif command_id == CommandId.DELIVER_SM:
                out.append(HEADER.pack(17, CommandId.DELIVER_SM_RESP, 0, sequence) + b"\x00")
                self.receipts += 1
                if self.receipts == len(self.pdus):
                    self.drained.set_result(None)
            elif command_id == CommandId.BIND_TRANSCEIVER_RESP:
                self.bound.set_result(None)
        del buffer[:pos]
        if out and self.transport is not None:
            self.transport.write(b"".join(out))


async def ceiling_run(port: int, messages: int, window: int, offset: int) -> float:
    """submit_sm/s of the bare protocol."""
    pdus = []
    for i, n in enumerate(range(offset, offset + messages)):
        body = ShortMessage(
            "Missiva",
            DEST[1:],
            text(n).encode("gsm03.38"),
            source_addr_ton=5,
            dest_addr_ton=1,
            dest_addr_npi=1,
            registered_delivery=1,
        ).encode()
        pdus.append(struct.pack(">IIII", 16 + len(body), CommandId.SUBMIT_SM, 0, i + 2) + body)
    loop = asyncio.get_running_loop()
    transport, esme = await loop.create_connection(lambda: BareEsme(pdus, window), "127.0.0.1", port)
    await esme.bound
    started = time.perf_counter()
    esme.start()
    finished = await esme.submitted
    await asyncio.wait_for(esme.drained, 60)
    transport.close()
    return messages / (finished - started)


class MailingBench:
    """An account, a list of ``messages`` SMS subscribers and an SMPP transport to the peer."""

    def __init__(self, database_url: str, data_dir: Path, port: int, messages: int, window: int) -> None:
        from missiva import migrate, runtime
        from missiva.config import Settings

        settings = Settings.from_env(
            {
                "MISSIVA_DATA_DIR": str(data_dir),
                "MISSIVA_DATABASE_URL": database_url,
                "MISSIVA_SECRET_KEY": "bench-secret",
                "MISSIVA_HUEY_IMMEDIATE": "1",
            }
        )
        runtime.configure(settings)
        migrate.upgrade(database_url)
        self.db = runtime.database()
        self.window = window
        self._setup(port, messages)

    def _setup(self, port: int, messages: int) -> None:
        from sqlalchemy import insert, select

        from missiva.audience import lists
        from missiva.audience.models import Recipient, Subscription
        from missiva.bootstrap import create_account
        from missiva.db import utcnow
        from missiva.delivery import mailings
        from missiva.delivery.sms import settings as sms_settings
        from missiva.delivery.sms import transports
        from missiva.messages import service as messages_service

        mailings.set_enqueuer(lambda _mailing_id: None)  # this process runs the sender itself
        with self.db.session() as session:
            self.account_id = create_account(session, "Bench", default_country="IT").account.id
            lists.ensure_default_fields(session, self.account_id)
            self.list_id = lists.create_list(session, self.account_id, "Bench", opt_in="single").id
            sms_settings.update_list(session, self.account_id, self.list_id, {"sender_id": "Missiva"})
            transports.create(
                session,
                self.account_id,
                {
                    "name": "peer",
                    "kind": "smpp",
                    "settings": {
                        "host": "127.0.0.1",
                        "port": port,
                        "system_id": "bench",
                        "window": self.window,
                    },
                    "secrets": {"password": "bench"},
                },
            )
            now = utcnow()
            session.execute(
                insert(Recipient),
                [
                    {
                        "account_id": self.account_id,
                        "mobile": f"+39333{n:06d}1",  # ends in 1: the peer reports delivered
                        "fields": {"1": f"Cliente {n}"},
                        "created_at": now,
                        "updated_at": now,
                    }
                    for n in range(1, messages + 1)
                ],
            )
            ids = session.scalars(select(Recipient.id).where(Recipient.account_id == self.account_id)).all()
            session.execute(
                insert(Subscription),
                [
                    {
                        "account_id": self.account_id,
                        "recipient_id": rid,
                        "list_id": self.list_id,
                        "channel": "sms",
                        "status": "subscribed",
                        "created_at": now,
                        "updated_at": now,
                        "subscribed_at": now,
                    }
                    for rid in ids
                ],
            )
            self.message_id = messages_service.create(
                session,
                self.account_id,
                self.list_id,
                {"channel": "sms", "text": "Offerta per [nome]: sconto 20% su tutto, solo oggi!"},
            ).id

    async def run(self, messages: int) -> float:
        """Messages/s of one SMS mailing, from the sender's start to its last receipt settled."""
        from missiva.delivery import mailings
        from missiva.delivery.configuration import SendingConfig
        from missiva.delivery.models import Mailing
        from missiva.delivery.sms.sender import SmsConfig, SmsMailingSender

        with self.db.session() as session:
            mailing = mailings.create(session, self.account_id, {"message_id": self.message_id})
            mailings.start(session, self.account_id, mailing.id)
            mailing_id = mailing.id
        sender = SmsMailingSender(
            self.db,
            mailing_id,
            config=SendingConfig(chunk=500),
            sms=SmsConfig(concurrency=4 * self.window, receipt_wait=120),
        )
        started = time.perf_counter()
        outcome = await sender.run()
        elapsed = time.perf_counter() - started
        with self.db.session() as session:
            done = session.get(Mailing, mailing_id)
            assert done is not None
            counts = (outcome.status, done.sent, done.delivered, done.uncertain)
        assert counts == ("finished", messages, messages, 0), counts
        return messages / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description="SMPP submit_sm/s vs a bare pipelined loop")
    parser.add_argument("--messages", type=int)
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mailing", action="store_true", help="the whole SMS mailing pipeline")
    parser.add_argument("--database-url", help="with --mailing: default SQLite in a temporary directory")
    args = parser.parse_args()
    messages = args.messages or (5_000 if args.mailing else 20_000)
    with tempfile.TemporaryDirectory() as tmp:
        peer, port = start_peer(Path(tmp) / "peer.jsonl")
        try:
            bench = None
            if args.mailing:
                url = args.database_url or f"sqlite:///{Path(tmp) / 'missiva.db'}"
                bench = MailingBench(url, Path(tmp), port, messages, args.window)
            figures, ceilings = [], []
            for run in range(args.runs):
                offset = run * 2 * messages
                if bench is not None:
                    figures.append(await bench.run(messages))
                else:
                    figures.append(await client_run(port, messages, args.window, offset))
                ceilings.append(await ceiling_run(port, messages, args.window, offset + messages))
                what = "mailing" if bench is not None else "client"
                print(f"run {run + 1}: {what} {figures[-1]:,.0f}, bare loop {ceilings[-1]:,.0f} submit_sm/s")
            received = sum(1 for _ in (Path(tmp) / "peer.jsonl").open())
        finally:
            assert peer.stdin is not None
            peer.stdin.close()
            peer.wait(timeout=10)
    expected = 2 * args.runs * messages
    assert received == expected, f"peer recorded {received} messages, expected {expected}"
    figure, ceiling = statistics.median(figures), statistics.median(ceilings)
    mode = "SMS mailings (ledger, render, SMPP, receipts settled)" if args.mailing else "client submits"
    print(f"{mode}: messages per run {messages}, window {args.window}, receipts on, medians of {args.runs}")
    ratio = figure / ceiling
    print(f"bench sms: {figure:.0f} submit_sm/s; ceiling {ceiling:.0f} submit_sm/s; ratio {ratio:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
