"""Standard Webhooks signatures (`webhook-id`, `webhook-timestamp`, `webhook-signature`).

During a secret rotation the request carries one `v1,<signature>` per valid secret, separated by a space,
as the specification allows: a receiver configured with either the old or the new secret accepts it.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format marker, not a secret


def new_secret() -> str:
    """A fresh signing secret, `whsec_` + Base64 of 32 random bytes (the format receivers' SDKs expect)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


class Signer:
    """Signs request bodies with one or more secrets (the newest first)."""

    def __init__(self, secrets_: Sequence[str]) -> None:
        if not secrets_:
            raise ValueError("at least one signing secret is needed")
        self._hooks = [Webhook(s) for s in secrets_]

    def headers(self, msg_id: str, body: str, at: datetime) -> dict[str, str]:
        """The three Standard Webhooks headers for `body` sent at `at`."""
        at = at.astimezone(UTC)
        signatures = " ".join(hook.sign(msg_id, at, body) for hook in self._hooks)
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signatures,
        }
