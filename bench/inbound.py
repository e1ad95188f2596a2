"""Inbound throughput: bounces classified per second, and bounces per second from SMTP to actions.

1. Classification: `classify()` over the bounce corpus repeated to ~5,000 messages (as
   bench/inbound_classify.py), printed for reference with its bare-parse ceiling.
2. The figure: --messages DSNs (the corpus samples, each rewritten for its own recipient and sent to
   that recipient's real VERP return path) delivered over one SMTP connection to the inbound receiver,
   then processed (classification, ledger, suppression list, unsubscribe with its audience event, one
   transaction each) on SQLite. Measured from the first MAIL FROM to the last commit.
   Ceiling, same run: the same delivery with the receiver only spooling (no processing): what the
   SMTP leg alone allows. Medians of --runs runs; each run uses fresh recipients.

    python bench/inbound.py [--messages 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import smtplib
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("MISSIVA_HUEY_IMMEDIATE", "1")

from sqlalchemy import insert  # noqa: E402

import inbound_classify  # noqa: E402
from missiva import migrate, runtime  # noqa: E402
from missiva.audience.lists import create_list  # noqa: E402
from missiva.audience.models import Recipient, Subscription  # noqa: E402
from missiva.bootstrap import create_account  # noqa: E402
from missiva.config import Settings  # noqa: E402
from missiva.db import get_database, utcnow  # noqa: E402
from missiva.delivery.models import LedgerEntry, Mailing  # noqa: E402
from missiva.inbound import processor, spool, verp  # noqa: E402
from missiva.inbound.classify import classify  # noqa: E402
from missiva.inbound.receiver import Receiver  # noqa: E402
from missiva.keys import derived_secret  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "bounces"
BOUNCE_DOMAIN = "bounces.bench.example"


def templates() -> list[tuple[bytes, bytes]]:
    """(raw sample, the recipient address it names) for every corpus sample that names one."""
    expected = json.loads((CORPUS / "expected.json").read_text())
    return [
        ((CORPUS / name).read_bytes(), want["recipient"].encode())
        for name, want in sorted(expected.items())
        if want["recipient"]
    ]


def setup(data_dir: Path) -> tuple[Settings, int, int]:
    """A migrated SQLite database with one account and list: (settings, account id, list id)."""
    url = f"sqlite:///{data_dir / 'missiva.db'}"
    migrate.upgrade(url)
    settings = Settings.from_env(
        {
            "MISSIVA_DATA_DIR": str(data_dir),
            "MISSIVA_DATABASE_URL": url,
            "MISSIVA_SECRET_KEY": "bench-secret",
            "MISSIVA_BOUNCE_DOMAIN": BOUNCE_DOMAIN,
            "MISSIVA_HUEY_IMMEDIATE": "1",
        }
    )
    runtime.configure(settings)
    with get_database(url).session() as session:
        account_id = create_account(session, "Bench").account.id
        list_id = create_list(session, account_id, "News", sender_email="news@bench.example").id
    return settings, account_id, list_id


def seed(settings: Settings, account_id: int, list_id: int, run: int, n: int) -> list[tuple[str, str]]:
    """A sent mailing to n fresh subscribers; (address, VERP return path) of each."""
    now = utcnow()
    addresses = [f"r{run}-{i}@bench{run}.example.org" for i in range(n)]
    db = runtime.database()
    with db.session() as session:
        inserted = session.execute(
            insert(Recipient).returning(Recipient.email, Recipient.id),
            [
                {"account_id": account_id, "email": a, "fields": {}, "created_at": now, "updated_at": now}
                for a in addresses
            ],
        )
        by_email = {email: rid for email, rid in inserted}
        ids = [by_email[a] for a in addresses]
        session.execute(
            insert(Subscription),
            [
                {"account_id": account_id, "recipient_id": rid, "list_id": list_id, "channel": "email",
                 "status": "subscribed", "created_at": now, "updated_at": now, "subscribed_at": now}
                for rid in ids
            ],
        )  # fmt: skip
        mailing = Mailing(account_id=account_id, list_id=list_id, status="finished", audience_size=n, sent=n)
        session.add(mailing)
        session.flush()
        session.execute(
            insert(LedgerEntry),
            [
                {"mailing_id": mailing.id, "account_id": account_id, "recipient_id": rid, "channel": "email",
                 "address": a, "state": "sent", "attempts": 1, "sent_at": now}
                for rid, a in zip(ids, addresses, strict=True)
            ],
        )  # fmt: skip
        mailing_id = mailing.id
    secret = derived_secret("verp", settings.secret_key)
    return [
        (a, verp.encode(mailing_id, rid, local="bounces", domain=BOUNCE_DOMAIN, secret=secret))
        for rid, a in zip(ids, addresses, strict=True)
    ]


def deliver(address: tuple[str, int], messages: list[tuple[str, bytes]]) -> None:
    """Each (rcpt, message) as its own transaction over one SMTP connection."""
    with smtplib.SMTP(*address, timeout=60) as client:
        for rcpt, raw in messages:
            client.sendmail("", [rcpt], raw)


def one_run(settings: Settings, account_id: int, list_id: int, run: int, n: int) -> tuple[float, float, dict]:
    samples = templates()
    targets = seed(settings, account_id, list_id, run, 2 * n)
    batches = []
    for offset in (0, n):
        batch = []
        for i, (address, return_path) in enumerate(targets[offset : offset + n]):
            raw, named = samples[i % len(samples)]
            batch.append((return_path, raw.replace(named, address.encode())))
        batches.append(batch)
    receiver = Receiver(settings, port=0)
    address = receiver.start()
    try:
        started = time.perf_counter()  # ceiling: the SMTP leg, spooling only
        deliver(address, batches[0])
        spool_rate = n / (time.perf_counter() - started)
        for item in spool.pending(settings):
            spool.done(settings, item.key)  # set aside, unprocessed
        started = time.perf_counter()  # figure: SMTP, spool, then classification and actions
        deliver(address, batches[1])
        summary = processor.process_pending(settings, runtime.database())
        rate = n / (time.perf_counter() - started)
    finally:
        receiver.stop()
    assert summary.processed == n and summary.failed == 0, summary
    return rate, spool_rate, dict(summary.actions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    batch = inbound_classify.messages()
    secret = b"bench-secret"
    classified = [
        inbound_classify.rate(lambda raw: classify(raw, verp_secret=secret), batch) for _ in range(3)
    ]
    print(f"classification: {statistics.median(classified):,.0f} msg/s over {len(batch)} corpus messages")

    with tempfile.TemporaryDirectory(prefix="missiva-bench-inbound-") as tmp:
        settings, account_id, list_id = setup(Path(tmp))
        figures, ceilings = [], []
        for run in range(args.runs):
            rate, ceiling, actions = one_run(settings, account_id, list_id, run, args.messages)
            figures.append(rate)
            ceilings.append(ceiling)
            print(
                f"run {run + 1}: {rate:,.0f} msg/s SMTP->actions, {ceiling:,.0f} msg/s SMTP->spool; {actions}"
            )
    figure, ceiling = statistics.median(figures), statistics.median(ceilings)
    print(f"messages per run: {args.messages} DSNs from {len(templates())} corpus samples, SQLite")
    print(f"bench inbound: {figure:.0f} msg/s; ceiling {ceiling:.0f} msg/s; ratio {figure / ceiling:.2f}")


if __name__ == "__main__":
    main()
