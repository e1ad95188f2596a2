"""Scaling a mailing out: `missiva worker --processes 2` with MISSIVA_SEND_PARALLEL=2 runs two senders
that share one mailing queued by `missiva send --queue`, and everyone gets it exactly once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter

import pytest

from missiva.delivery import configuration
from missiva.delivery.models import Mailing
from missiva.messages import service as messages

from .conftest import received_to, subscribe_many


def _env(settings, sink) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MISSIVA_")}
    env.update(
        MISSIVA_DATA_DIR=str(settings.data_dir),
        MISSIVA_DATABASE_URL=settings.database_url,
        MISSIVA_SECRET_KEY=settings.secret_key,
        MISSIVA_BASE_URL="https://missiva.test",
        MISSIVA_SMTP_URL=sink.url(),
        MISSIVA_SENDING_DOMAIN="news.example.com",
        MISSIVA_SEND_PARALLEL="2",
        MISSIVA_SEND_CHUNK="10",
        MISSIVA_INBOUND_PORT="0",
    )
    return env


def test_two_worker_processes_share_a_queued_mailing(db, settings, shop, sink, tmp_path):
    people = [f"w{i}@example.org" for i in range(80)]
    subscribe_many(db, shop["id"], shop["list_id"], people)
    with db.session() as session:
        message_id = messages.create(
            session, shop["id"], shop["list_id"], {"subject": "Hi", "html": "<p>Hi</p>"}
        ).id
    env = _env(settings, sink)
    cli = [sys.executable, "-m", "missiva.cli"]
    log = (tmp_path / "worker.log").open("w+")
    worker = subprocess.Popen(
        [*cli, "worker", "--processes", "2"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        queued = subprocess.run(
            [*cli, "send", str(message_id), "--queue", "--account", str(shop["id"])],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert queued.returncode == 0, queued.stdout + queued.stderr
        mailing_id = int(re.search(r"mailing (\d+): running", queued.stdout).group(1))
        deadline = time.monotonic() + 60
        while True:
            with db.session() as session:
                mailing = session.get(Mailing, mailing_id)
                if mailing.status == "finished" or time.monotonic() > deadline:
                    break
            time.sleep(0.2)
        assert (mailing.status, mailing.sent, mailing.queued) == ("finished", 80, 0)
        # The second sender may be picked up after the first finished (an idle worker polls less
        # often): wait until both have reported.
        pattern = re.compile(rf"mailing {mailing_id}: \w+, (\d+) sent in this run")
        runs: list[int] = []
        while len(runs) < 2 and time.monotonic() < deadline + 30:
            time.sleep(0.2)
            log.seek(0)
            runs = [int(n) for n in pattern.findall(log.read())]
    finally:
        worker.terminate()
        worker.wait(20)
    assert Counter(received_to(sink)) == Counter(people)  # everyone once, nobody twice
    assert len(runs) == 2 and sum(runs) == 80  # two senders ran on it; together they sent it once


def test_send_parallel_is_validated_with_a_clear_error():
    assert configuration.from_env({"MISSIVA_SEND_PARALLEL": "4"}).parallel == 4
    assert configuration.from_env({}).parallel == 1
    for bad in ("0", "100", "two"):
        with pytest.raises(configuration.RelayConfigError, match="MISSIVA_SEND_PARALLEL"):
            configuration.from_env({"MISSIVA_SEND_PARALLEL": bad})
