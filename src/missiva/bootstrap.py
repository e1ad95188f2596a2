"""Flows that span domains: provisioning an account with its defaults, and the demo for `make run`."""

from __future__ import annotations

import json
import os
from typing import Any

from sqlalchemy.orm import Session

from missiva import runtime
from missiva.audience import lists as lists_svc
from missiva.config import Settings
from missiva.tenancy import service as tenancy


def create_account(session: Session, name: str, **options: Any) -> tenancy.NewAccount:
    """An account ready to use: the tenancy defaults plus MailUp's eleven standard fields."""
    new = tenancy.create_account(session, name, **options)
    lists_svc.ensure_default_fields(session, new.account.id)
    return new


def ensure_demo(settings: Settings) -> dict[str, Any]:
    """Create the demo account and list on first start; later starts read back what was created.

    The demo key is kept in a 0600 file under the data directory because the database holds only
    its hash.
    """
    path = settings.data_dir / "demo.json"
    if path.exists():
        return json.loads(path.read_text())
    with runtime.database().session() as session:
        new = create_account(session, "Demo", default_country="IT")
        lst = lists_svc.create_list(session, new.account.id, "Newsletter", opt_in="double", language="en")
        demo = {
            "account_id": new.account.id,
            "list_id": lst.id,
            "list_guid": lst.guid,
            "api_key": new.api_key,
            "ws_username": new.ws_username,
            "ws_password": new.ws_password,
        }
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(demo, fh)
    return demo
