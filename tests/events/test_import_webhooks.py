"""Imported changes reach webhook endpoints too, queued a batch at a time."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from missiva.events import service as webhooks
from missiva.events.models import WebhookDelivery
from tests.sync.import_helpers import import_file


def test_an_import_queues_one_delivery_per_imported_subscription(
    db, account, lst, receiver, make_dispatcher, tmp_path
):
    path = tmp_path / "crm.csv"
    path.write_text("email;nome\n" + "".join(f"user{i}@example.com;User {i}\n" for i in range(250)))
    with db.session() as s:
        webhooks.create_endpoint(
            s,
            account["id"],
            url=receiver.url("/crm"),
            sources=["import"],
            event_types=["subscription.confirmed"],
        )
    run = import_file(db, account["id"], path, list_id=lst.id, batch_size=100)
    assert run.status == "completed" and run.rows_new == 250
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(WebhookDelivery)) == 250
    make_dispatcher(concurrency=4).run_until_idle(30)  # the test receiver's listen backlog is small
    bodies = [json.loads(r.body) for r in receiver.wait_for(250)]
    assert {b["recipient"]["email"] for b in bodies} == {f"user{i}@example.com" for i in range(250)}
    assert {(b["type"], b["source"], b["list"]["id"]) for b in bodies} == {
        ("subscription.confirmed", "import", lst.id)
    }
