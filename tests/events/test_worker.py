"""`missiva serve` with its background worker delivers webhooks on its own (real process, real queue)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from standardwebhooks.webhooks import Webhook

import missiva


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_served_api_change_reaches_the_endpoint_through_the_worker(tmp_path: Path, receiver):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MISSIVA_")}
    env.update(
        {
            "MISSIVA_DATA_DIR": str(tmp_path / "var"),
            "MISSIVA_HUEY_IMMEDIATE": "0",
            "PYTHONPATH": str(Path(missiva.__file__).resolve().parents[1]),
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "missiva", "serve", "--bootstrap", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(150):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        demo = json.loads((tmp_path / "var" / "demo.json").read_text())
        headers = {"Authorization": f"Bearer {demo['api_key']}"}
        hook = httpx.post(f"{base}/api/v1/webhooks", json={"url": receiver.url()}, headers=headers).json()
        r = httpx.post(
            f"{base}/api/v1/lists/{demo['list_id']}/subscribe",
            json={"email": "live@example.com", "double_opt_in": False},
            headers=headers,
        )
        assert r.status_code == 201, r.text
        [req] = receiver.wait_for(1, timeout=20)
        event = Webhook(hook["secret"]).verify(req.body, req.headers)
        assert event["type"] == "subscription.confirmed" and event["recipient"]["email"] == "live@example.com"
        for _ in range(100):  # the worker records the answer just after the receiver got the request
            log = httpx.get(f"{base}/api/v1/webhooks/{hook['id']}/deliveries", headers=headers).json()
            if log["items"][0]["status"] != "pending":
                break
            time.sleep(0.05)
        assert [d["status"] for d in log["items"]] == ["delivered"]
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
