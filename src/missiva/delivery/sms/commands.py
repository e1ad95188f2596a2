"""CLI commands of the SMS channel: `missiva sms listen`, `missiva sms transports`, `missiva sms analyse`."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import threading

import typer

from missiva import runtime
from missiva.delivery.sms import transports
from missiva.delivery.sms.content import analysis_view
from missiva.delivery.sms.encoding import SmsTextError, analyse, split_text
from missiva.delivery.sms.listener import SmsListener

sms_app = typer.Typer(
    help="SMS: receipts and replies listener, transports, text analysis.", no_args_is_help=True
)
AccountOpt = typer.Option(None, "--account", "-a", help="account id (default: the only account)")


@sms_app.command("listen")
def listen() -> None:
    """Keep every account's SMPP transports bound to receive delivery receipts and STOP replies."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    listener = SmsListener(runtime.database())

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, listener.stop)
        await listener.run()

    asyncio.run(main())


def start_in_thread() -> SmsListener:
    """Run a listener beside the web server (`missiva serve`); stop it with `.stop()`."""
    listener = SmsListener(runtime.database())
    threading.Thread(target=lambda: asyncio.run(listener.run()), name="sms-listener", daemon=True).start()
    return listener


@sms_app.command("transports")
def list_transports(account: int | None = AccountOpt) -> None:
    """The account's SMS transports as JSON lines (secrets by name only)."""
    from missiva.cli import _account_id, _session

    with _session() as session:
        for row in transports.list_for(session, _account_id(session, account)):
            typer.echo(json.dumps(transports.view(row), default=str))


@sms_app.command("analyse")
def analyse_text(text: str = typer.Argument(..., help="the SMS text")) -> None:
    """Encoding, segments and the characters that force UCS-2, before sending."""
    from missiva.cli import _fail

    try:
        parts = split_text(text)
    except SmsTextError as exc:
        _fail(str(exc))
        return
    typer.echo(json.dumps({**analysis_view(analyse(text)), "parts": parts}, ensure_ascii=False))
