"""Render and send personalised ~5 KB messages into Postfix's smtp-sink; smtp-source is the ceiling.

Figure: messages/s for the whole path a mailing takes (render each recipient from a compiled skeleton,
then send through the pipelining pool, 10 sessions), distinct recipient per message, merge tags in
subject and body. Ceiling, in the same run and into the same sink: ``smtp-source -s 10 -d`` with
5,120-byte messages (10 sessions kept open). Medians of --runs runs; peak RSS from getrusage.

    python bench/send_engine.py [--messages 100000] [--runs 3] [--loop uvloop|asyncio]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from missiva.delivery.smtp import Relay, SendJob, SendStatus, SmtpPool
from missiva.messages.content import MessageContent
from missiva.messages.mime import DkimKey, MessageSkeleton, Recipient, SendingDomain
from missiva.messages.templating import FieldMap

SESSIONS = 10
MESSAGE_SIZE = 5120
FIELDS = FieldMap({"nome": 1, "cognome": 2, "città": 3})
PARAGRAPH = (
    "<p>Questa settimana nel nostro negozio di [città|Italia] trovi nuove collezioni, sconti sui "
    "prodotti più amati e consigli per la stagione. Ti aspettiamo!</p>"
)
HTML = (
    "<html><head><style>p{font-family:Arial,sans-serif;color:#333;line-height:1.4}"
    "h1{color:#c00}</style></head><body><h1>Ciao [nome|Cliente] [cognome]!</h1>"
    + PARAGRAPH * 9
    + '<p><a href="https://news.example.com/offerte?e=[email]">Scopri le offerte</a></p></body></html>'
)


def skeleton(dkim_key: DkimKey | None = None) -> MessageSkeleton:
    return MessageSkeleton(
        MessageContent(
            subject="[nome|Ciao], le offerte di [città|questa settimana]",
            html=HTML,
            from_address="news@example.com",
            from_name="Negozio Esempio",
            preheader="Sconti fino al 30% solo per te",
        ),
        mailing_id=1,
        domain=SendingDomain("news.example.com", dkim=dkim_key, verp_secret=b"bench"),
        fields=FIELDS,
    )


def recipients(count: int) -> Iterator[Recipient]:
    cities = ("Roma", "Milano", "Napoli", "Torino", "")
    for i in range(count):
        yield Recipient(
            id=i,
            email=f"user{i}@example.org",
            unsubscribe_url=f"https://news.example.com/u/{i:08x}",
            unsubscribe_mailto=f"unsubscribe+{i:08x}@news.example.com",
            fields={1: f"Nome{i}", 2: f"Cognome{i}", 3: cities[i % 5]},
        )


def jobs(compiled: MessageSkeleton, count: int) -> Iterator[SendJob]:
    for recipient in recipients(count):
        message = compiled.render(recipient)
        yield SendJob(message.envelope_from, message.recipient, message.data)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_sink() -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    process = subprocess.Popen([binary, *user, f"127.0.0.1:{port}", "1000"], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return process, port
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.02)


async def send_run(port: int, compiled: MessageSkeleton, count: int) -> float:
    """Seconds to render and send ``count`` messages; fails loudly if any is not accepted."""
    relay = Relay(f"smtp://127.0.0.1:{port}", max_connections=SESSIONS)
    async with SmtpPool([relay], helo_name="bench.example.com") as pool:
        started = time.perf_counter()
        sent = 0
        async for _, result in pool.send_stream(jobs(compiled, count)):
            if result.status is not SendStatus.SENT:
                raise SystemExit(f"unexpected result: {result}")
            sent += 1
        elapsed = time.perf_counter() - started
    assert sent == count
    return elapsed


def source_run(port: int, count: int) -> float:
    binary = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    command = [binary, "-s", str(SESSIONS), "-m", str(count), "-l", str(MESSAGE_SIZE), "-d"]
    command += ["-f", "a@example.com", "-t", "b@example.org", f"127.0.0.1:{port}"]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def render_rate(compiled: MessageSkeleton, count: int) -> float:
    started = time.perf_counter()
    for _ in jobs(compiled, count):
        pass
    return count / (time.perf_counter() - started)


def dkim_skeleton() -> MessageSkeleton:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return skeleton(DkimKey("bench", pem))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args()
    run = asyncio.run
    if args.loop == "uvloop":
        try:
            import uvloop

            run = uvloop.run
        except ImportError:
            args.loop = "asyncio (uvloop not installed)"

    compiled = skeleton()
    size = len(next(jobs(compiled, 1)).data)
    print(f"message size {size} bytes; {args.messages} messages x {args.runs} runs; {SESSIONS} sessions")
    print(f"event loop: {args.loop}")
    sample = min(args.messages, 20_000)
    print(f"render only: {render_rate(compiled, sample):,.0f} msg/s")
    dkim_sample = min(args.messages, 2_000)
    print(f"render + DKIM (RSA-2048, cryptography): {render_rate(dkim_skeleton(), dkim_sample):,.0f} msg/s")

    sink, port = start_sink()
    ours: list[float] = []
    ceiling: list[float] = []
    try:
        for index in range(args.runs):
            ours.append(args.messages / run(send_run(port, compiled, args.messages)))
            ceiling.append(args.messages / source_run(port, args.messages))
            print(f"run {index + 1}: render+send {ours[-1]:,.0f} msg/s; smtp-source {ceiling[-1]:,.0f} msg/s")
    finally:
        sink.terminate()
        sink.wait(5)

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figure, top = statistics.median(ours), statistics.median(ceiling)
    print(f"peak RSS {peak_mb:.0f} MB")
    print(f"bench send_engine: {figure:.0f} msg/s; ceiling {top:.0f} msg/s; ratio {figure / top:.2f}")


if __name__ == "__main__":
    main()
