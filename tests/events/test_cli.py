"""`missiva webhooks ...` as an operator runs it."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from missiva.audience import subscriptions as subs
from missiva.cli import app
from missiva.events import service


def run(*args: str) -> dict:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_webhooks_commands_manage_endpoints_and_their_delivery_log(
    db, account, lst, receiver, make_dispatcher
):
    acct = str(account["id"])
    created = run(
        "webhooks",
        "create",
        receiver.url(),
        "--account",
        acct,
        "--format",
        "mailup",
        "--param",
        "customerEmail=[Email]",
        "--param",
        "evt=[EventType]",
        "--method",
        "GET",
        "--upper",
    )
    assert created["secret"].startswith("whsec_") and created["mailup"]["method"] == "GET"
    wid = str(created["id"])
    assert [w["id"] for w in run("webhooks", "list", "--account", acct)["webhooks"]] == [created["id"]]

    receiver.status = 410
    with db.session() as s:
        subs.subscribe(s, account["id"], lst.id, email="ann@example.com")
    make_dispatcher().run_until_idle()
    shown = run("webhooks", "show", wid, "--account", acct, "--secret")
    assert shown["health"] == "disabled" and shown["deliveries"] == {"dead": 1}
    assert shown["secret"] == created["secret"]
    [dead] = run("webhooks", "deliveries", wid, "--account", acct, "--status", "dead")["deliveries"]
    assert dead["response_code"] == 410

    bad = CliRunner().invoke(app, ["webhooks", "redeliver", wid, "--account", acct])
    assert bad.exit_code == 2 and "DELIVERY_ID or --dead" in bad.output
    receiver.status = 200
    with db.session() as s:
        service.update_endpoint(s, account["id"], created["id"], {"active": True})
    assert run("webhooks", "redeliver", wid, str(dead["id"]), "--account", acct) == {"requeued": 1}
    make_dispatcher().run_until_idle()
    assert [r.query for r in receiver.wait_for(2)] == ["customerEmail=ann%40example.com&evt=SUBSCRIBE"] * 2

    rotated = run("webhooks", "rotate-secret", wid, "--account", acct, "--overlap-hours", "2")
    assert rotated["secret"] != created["secret"] and rotated["previous_valid_until"]
    missing = CliRunner().invoke(app, ["webhooks", "show", "999999", "--account", acct])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    bad_url = CliRunner().invoke(app, ["webhooks", "create", "gopher://x", "--account", acct])
    assert bad_url.exit_code == 2 and "http and https" in bad_url.output


def test_webhooks_create_takes_message_events_in_batches(db, account, receiver):
    acct = str(account["id"])
    created = run(
        "webhooks",
        "create",
        receiver.url(),
        "--account",
        acct,
        "--event",
        "message.delivered",
        "--batch-size",
        "100",
    )
    assert created["event_types"] == ["message.delivered"] and created["batch_size"] == 100
    refused = CliRunner().invoke(
        app, ["webhooks", "create", receiver.url(), "--account", acct, "--batch-size", "1000"]
    )
    assert refused.exit_code == 2 and "batch size must be 1 to 500" in refused.output
