"""Benchmark: webhook deliveries per second, and what the outbox costs a subscribe.

1. Deliveries/s: N native events are queued (one per recipient), then the real dispatcher (claim, render,
   sign, send over keep-alive HTTP, record) delivers them to a local receiver that answers 200 at once
   (a raw asyncio HTTP/1.1 responder in its own process). Ceiling: a bare client loop on the same HTTP
   stack (httpcore, the transport under httpx, in the same lanes) with the same concurrency, posting the
   same bodies to the same receiver, with no database, rendering or signing.
2. Batches: the same number of `message.delivered` events to an endpoint with `batch_size` 100
   (events/s; each request carries up to 100 of them).
3. Subscribe overhead: subscribes/s through the service (one transaction each, like the API) with no
   webhook endpoint, then with 3 matching endpoints (event row + 3 outbox rows per subscribe).

Medians of several runs. SQLite by default; `--postgres` runs the same against a throwaway PostgreSQL.
Usage: python bench/webhooks.py [--events 4000] [--runs 3] [--postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MISSIVA_SECRET_KEY", "bench-secret")
os.environ.setdefault("MISSIVA_HUEY_IMMEDIATE", "1")

CONCURRENCY = 64


# -- the receiver (runs in its own process) ------------------------------------------------------


class _Responder(asyncio.Protocol):
    """HTTP/1.1 keep-alive: answers every request with 200 and a one-byte body, nothing else."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in self.buffer[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            self.buffer = self.buffer[total:]
            self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n1")  # type: ignore[attr-defined]


async def _serve_receiver() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Responder, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


def start_receiver() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, __file__, "--receiver"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}/hook"


# -- measurements --------------------------------------------------------------------------------


def setup_database(url: str):
    from missiva import migrate, runtime
    from missiva.audience import events
    from missiva.config import Settings
    from missiva.db import get_database
    from missiva.events import outbox

    migrate.upgrade(url)
    settings = Settings.from_env(
        {
            "MISSIVA_DATABASE_URL": url,
            "MISSIVA_SECRET_KEY": "bench-secret",
            "MISSIVA_DATA_DIR": tempfile.mkdtemp(),
        }
    )
    runtime.configure(settings)
    events.add_listener(outbox.on_audience_event)
    return get_database(url), settings


def new_account(db, name: str) -> tuple[int, int]:
    from missiva.audience import lists as lists_svc
    from missiva.bootstrap import create_account

    with db.session() as s:
        account_id = create_account(s, name).account.id
        list_id = lists_svc.create_list(s, account_id, "Bench", opt_in="single").id
    return account_id, list_id


def subscribe_many(db, account_id: int, list_id: int, count: int, tag: str) -> float:
    """Subscribes per second, one transaction per subscribe."""
    from missiva.audience import subscriptions as subs

    started = time.perf_counter()
    for i in range(count):
        with db.session() as s:
            subs.subscribe(s, account_id, list_id, email=f"{tag}{i}@bench.example", fields={"nome": f"N{i}"})
    return count / (time.perf_counter() - started)


def queue_events(db, account_id: int, list_id: int, count: int) -> None:
    """`count` subscribes through the service, 500 per transaction (fast to set up, same rows)."""
    from missiva.audience import subscriptions as subs

    for start in range(0, count, 500):
        with db.session() as s:
            for i in range(start, min(start + 500, count)):
                subs.subscribe(s, account_id, list_id, email=f"q{i}@bench.example", fields={"nome": f"N{i}"})


def requeue_all(db, endpoint_id: int) -> int:
    from sqlalchemy import update

    from missiva.db import utcnow
    from missiva.events.models import WebhookDelivery

    with db.session() as s:
        now = utcnow()
        return s.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint_id)
            .values(status="pending", next_attempt_at=now, window_start=now, attempts=0, delivered_at=None)
        ).rowcount


def dispatch_rate(db, settings, endpoint_id: int) -> float:
    from sqlalchemy import func, select

    from missiva.events.dispatcher import DispatchConfig, Dispatcher
    from missiva.events.models import WebhookDelivery

    queued = requeue_all(db, endpoint_id)
    config = DispatchConfig(
        batch_size=500, concurrency=CONCURRENCY, batches_in_flight=4, lease=timedelta(seconds=60)
    )
    dispatcher = Dispatcher(db, settings.secret_key, config)
    started = time.perf_counter()
    dispatcher.run_until_idle()
    elapsed = time.perf_counter() - started
    with db.session() as s:
        delivered = s.scalar(
            select(func.count()).where(
                WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == "delivered"
            )
        )
    assert delivered == queued, f"only {delivered} of {queued} delivered"
    return queued / elapsed


def queue_message_events(db, account_id: int, list_id: int, count: int) -> None:
    """`count` message.delivered events about the list's recipients, 1,000 per transaction."""
    from sqlalchemy import select

    from missiva.audience.models import Subscription
    from missiva.db import utcnow
    from missiva.delivery.outcomes import MESSAGE_DELIVERED, MessageEvent
    from missiva.events import message_events

    with db.session() as s:
        ids = list(s.scalars(select(Subscription.recipient_id).where(Subscription.list_id == list_id)))
    now = utcnow()
    for start in range(0, count, 1000):
        batch = [
            MessageEvent(
                MESSAGE_DELIVERED, account_id, None, ids[i % len(ids)], now, {"reply": "250 2.0.0 Ok"}
            )
            for i in range(start, min(start + 1000, count))
        ]
        with db.session() as s:
            message_events.publish(s, batch)


def sample_requests(db, settings, endpoint_id: int) -> list[tuple[str, dict[str, str], bytes]]:
    """The same requests the dispatcher sends (bodies and signed headers), for the ceiling loop."""
    from missiva.events.dispatcher import Dispatcher

    requeue_all(db, endpoint_id)
    dispatcher = Dispatcher(db, settings.secret_key)
    out = []
    while jobs := dispatcher.claim_batch():
        for job in jobs:
            req = job.rendered.request(job.endpoint, dispatcher.clock())
            out.append((req.url, req.headers, req.content))
    return out


async def _ceiling(requests: list[tuple[str, dict[str, str], bytes]]) -> float:
    """The same requests through the same HTTP client setup, with no database, rendering or signing."""
    from missiva.events.dispatcher import Lanes

    async with Lanes(CONCURRENCY, timeout=10) as lanes:

        async def post(url: str, headers: dict[str, str], body: bytes) -> None:
            async with lanes.lane() as pool:
                response = await pool.request("POST", url, headers=list(headers.items()), content=body)
                assert response.status == 200

        started = time.perf_counter()
        await asyncio.gather(*(post(*r) for r in requests))
        return len(requests) / (time.perf_counter() - started)


def ceiling_rate(requests: list[tuple[str, dict[str, str], bytes]]) -> float:
    """Run the ceiling loop on the event loop the dispatcher uses."""
    from missiva.events.dispatcher import new_event_loop

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(_ceiling(requests))


def run(url: str, events: int, runs: int, label: str) -> tuple[float, float]:
    from missiva.events import service

    db, settings = setup_database(url)
    receiver, hook_url = start_receiver()
    try:
        # Subscribe overhead: 0 endpoints vs 3 matching endpoints.
        subscribes = 300
        bare_id, bare_list = new_account(db, "bare")
        hooked_id, hooked_list = new_account(db, "hooked")
        with db.session() as s:
            for _ in range(3):
                service.create_endpoint(s, hooked_id, url="http://127.0.0.1:9/never-called", active=True)
        bare, hooked = [], []
        for r in range(runs + 2):
            bare.append(subscribe_many(db, bare_id, bare_list, subscribes, f"bare{r}-"))
            hooked.append(subscribe_many(db, hooked_id, hooked_list, subscribes, f"hooked{r}-"))
        b, h = statistics.median(bare), statistics.median(hooked)
        print(
            f"[{label}] subscribes/s without endpoints: {b:,.0f}; with 3 endpoints: {h:,.0f}; "
            f"ratio {h / b:.2f} ({(1 / h - 1 / b) * 1e6:,.0f} us extra per subscribe)"
        )

        # Deliveries: one endpoint, `events` queued events.
        account_id, list_id = new_account(db, "deliveries")
        with db.session() as s:
            endpoint, _ = service.create_endpoint(s, account_id, url=hook_url)
            endpoint_id = endpoint.id
        from sqlalchemy import text

        with db.session() as s:  # the hooked account's endpoints must not join the measured queue
            s.execute(text("DELETE FROM webhook_endpoints WHERE account_id = :a"), {"a": hooked_id})
        queue_events(db, account_id, list_id, events)
        rates, ceilings = [], []
        requests = sample_requests(db, settings, endpoint_id)
        for _ in range(runs):
            rates.append(dispatch_rate(db, settings, endpoint_id))
            ceilings.append(ceiling_rate(requests))
        rate, ceiling = statistics.median(rates), statistics.median(ceilings)
        print(
            f"[{label}] deliveries/s: runs {[round(x) for x in rates]}, median {rate:,.0f}; "
            f"ceiling runs {[round(x) for x in ceilings]}, median {ceiling:,.0f}"
        )

        # Batches: message events to an endpoint taking 100 per request (one recipient each, so the
        # per-recipient order never holds a batch back).
        with db.session() as s:
            s.execute(text("UPDATE webhook_endpoints SET active = false WHERE id = :e"), {"e": endpoint_id})
            batched, _ = service.create_endpoint(
                s, account_id, url=hook_url, event_types=["message.delivered"], batch_size=100
            )
            batched_id = batched.id
        queue_message_events(db, account_id, list_id, events)
        batch_rates = [dispatch_rate(db, settings, batched_id) for _ in range(runs)]
        print(
            f"[{label}] message events/s in batches of 100: runs {[round(x) for x in batch_rates]}, "
            f"median {statistics.median(batch_rates):,.0f}"
        )
        return rate, ceiling
    finally:
        receiver.terminate()
        receiver.wait()
        db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", action="store_true", help="also measure on PostgreSQL")
    parser.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        asyncio.run(_serve_receiver())
        return
    workdir = Path(tempfile.mkdtemp(prefix="missiva-bench-"))
    rate, ceiling = run(f"sqlite:///{workdir / 'bench.db'}", args.events, args.runs, "sqlite")
    if args.postgres:
        from tests.servers import PostgresServer

        server = PostgresServer().start(fsync=True)
        try:
            run(server.create_database("bench"), args.events, args.runs, "postgresql")
        finally:
            server.stop()
    ratio = rate / ceiling
    print(f"bench webhooks: {rate:.0f} deliveries/s; ceiling {ceiling:.0f} deliveries/s; ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
