"""`Idempotency-Key` on POST: a retried request gets the first answer instead of acting twice.

Pure ASGI so the stored body is exactly what the client first received. A key is scoped to the
account; reusing it with a different body is an error, and a retry that arrives while the first
attempt is still running is told to wait (409) rather than run concurrently.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from anyio import to_thread
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from missiva import runtime
from missiva.tenancy import service as tenancy
from missiva.tenancy.models import IdempotencyRecord

MAX_KEY_LENGTH = 200


class IdempotencyMiddleware:
    """Replays stored responses for repeated POSTs under /api/ carrying an Idempotency-Key."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        key = headers.get("idempotency-key", "").strip()
        auth = headers.get("authorization", "")
        if not key or not auth.lower().startswith("bearer "):
            await self.app(scope, receive, send)
            return
        if len(key) > MAX_KEY_LENGTH:
            await _send_problem(send, 422, f"Idempotency-Key is longer than {MAX_KEY_LENGTH} characters")
            return
        body = await _read_body(receive)
        digest = hashlib.sha256(scope["path"].encode() + b"\0" + body).hexdigest()
        account_id = await to_thread.run_sync(_account_of, auth[7:].strip())
        if account_id is None:  # let the route answer 401 as usual
            await self.app(scope, _replay(body), send)
            return
        claim = await to_thread.run_sync(_claim, account_id, key, digest)
        if isinstance(claim, IdempotencyRecord):
            if claim.request_hash != digest:
                await _send_problem(send, 422, "Idempotency-Key was already used with a different request")
            elif claim.status_code is None:
                await _send_problem(send, 409, "a request with this Idempotency-Key is still being processed")
            else:
                await _send_stored(send, claim)
            return
        captured: dict[str, Any] = {"status": 500, "headers": [], "body": b""}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = message.get("headers", [])
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, _replay(body), capture)
        finally:
            await to_thread.run_sync(_finish, account_id, key, captured)


def _account_of(api_key: str) -> int | None:
    with runtime.database().session() as session:
        row = tenancy.authenticate_api_key(session, api_key)
        return row.account_id if row else None


def _claim(account_id: int, key: str, digest: str) -> IdempotencyRecord | None:
    """Insert a placeholder for the key; the existing record if another request got there first."""
    db = runtime.database()
    try:
        with db.session() as session:
            session.add(IdempotencyRecord(account_id=account_id, key=key, request_hash=digest))
        return None
    except IntegrityError:
        with db.session() as session:
            return session.scalar(
                select(IdempotencyRecord).where(
                    IdempotencyRecord.account_id == account_id, IdempotencyRecord.key == key
                )
            )


def _finish(account_id: int, key: str, captured: dict[str, Any]) -> None:
    """Store the answer; a server error frees the key so the client may retry for real."""
    with runtime.database().session() as session:
        where = (IdempotencyRecord.account_id == account_id, IdempotencyRecord.key == key)
        if captured["status"] >= 500:
            session.execute(delete(IdempotencyRecord).where(*where))
            return
        record = session.scalar(select(IdempotencyRecord).where(*where))
        if record is None:
            return
        content_type = next(
            (v.decode("latin-1") for k, v in captured["headers"] if k.lower() == b"content-type"), None
        )
        record.status_code = captured["status"]
        record.content_type = content_type
        record.body = captured["body"].decode("utf-8", "replace")


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _send_stored(send: Send, record: IdempotencyRecord) -> None:
    body = (record.body or "").encode()
    headers = [(b"content-length", str(len(body)).encode()), (b"idempotent-replayed", b"true")]
    if record.content_type:
        headers.append((b"content-type", record.content_type.encode()))
    await send({"type": "http.response.start", "status": record.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_problem(send: Send, status: int, detail: str) -> None:
    body = json.dumps(
        {
            "type": "about:blank",
            "title": "idempotency",
            "status": status,
            "detail": detail,
            "errors": [{"field": "Idempotency-Key", "message": detail}],
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
