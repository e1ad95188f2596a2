"""At-least-once delivery across a `kill -9` of the dispatcher process in the middle of a batch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from sqlalchemy import func, select

import missiva
from missiva.audience import recipients
from missiva.audience import subscriptions as subs
from missiva.events import service
from missiva.events.enums import DeliveryStatus
from missiva.events.models import WebhookDelivery


def dispatcher_process(settings, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MISSIVA_")}
    env.update(
        {
            "MISSIVA_DATABASE_URL": settings.database_url,
            "MISSIVA_SECRET_KEY": settings.secret_key,
            "MISSIVA_DATA_DIR": str(settings.data_dir),
            "MISSIVA_HUEY_IMMEDIATE": "1",
            "PYTHONPATH": str(Path(missiva.__file__).resolve().parents[1]),
        }
    )
    cmd = [sys.executable, "-m", "missiva", "webhooks", "dispatch", "--timeout", "1", "--lease", "2", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until_all_delivered(db, timeout: float = 30.0) -> None:
    """Poll until the restarted dispatcher has recorded every delivery (a short polling wait)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.session() as s:
            left = s.scalar(
                select(func.count()).where(WebhookDelivery.status != DeliveryStatus.DELIVERED.value)
            )
        if left == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"{left} deliveries still not delivered")


def test_sigkill_mid_batch_then_restart_delivers_everything_at_least_once_with_stable_ids(
    db, settings, account, lst, receiver
):
    with db.session() as s:
        service.create_endpoint(s, account["id"], url=receiver.url())
    emails = [f"r{i}@example.com" for i in range(3)]
    for email in emails:
        with db.session() as s:
            subs.subscribe(s, account["id"], lst.id, email=email)
        for n in range(4):
            with db.session() as s:
                r = recipients.find(s, account["id"], recipients.Identity(email=email))
                recipients.update_profile(s, account["id"], r, source="api", fields={"nome": f"v{n}"})
        with db.session() as s:
            subs.unsubscribe(s, account["id"], lst.id, email=email)
    with db.session() as s:
        expected = {d.webhook_id for d in s.scalars(select(WebhookDelivery))}
    assert len(expected) == 18

    receiver.hang_from = 5  # the sixth request never gets its answer: the batch is mid-flight
    first = dispatcher_process(settings, "--batch-size", "4", "--concurrency", "2")
    try:
        receiver.wait_for(6, timeout=30)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    assert first.returncode == -signal.SIGKILL
    receiver.hang_from = None
    receiver.release.set()

    # The restarted dispatcher polls; the killed one's claims become due when their 2 s lease ends.
    second = dispatcher_process(settings)
    try:
        wait_until_all_delivered(db)
    finally:
        second.terminate()
        second.communicate(timeout=20)

    got = receiver.requests
    assert {r.webhook_id for r in got} == expected
    bodies = defaultdict(set)
    for r in got:
        bodies[r.webhook_id].add(r.body)
    duplicated = [wid for wid in bodies if sum(r.webhook_id == wid for r in got) > 1]
    assert duplicated, "the request in flight at the kill must be sent again"
    assert all(len(b) == 1 for b in bodies.values())  # a duplicate is the same message
    first_seen: dict[str, list[int]] = defaultdict(list)
    seen: set[str] = set()
    for r in got:
        if r.webhook_id in seen:
            continue
        seen.add(r.webhook_id)
        body = json.loads(r.body)
        first_seen[body["recipient"]["email"]].append(int(r.webhook_id.removeprefix("evt_")))
    assert all(ids == sorted(ids) and len(ids) == 6 for ids in first_seen.values())
