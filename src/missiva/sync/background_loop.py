"""An asyncio event loop in a daemon thread, for asyncssh code called from synchronous code."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class BackgroundLoop:
    """Runs coroutines submitted from any thread; works whether or not the caller runs a loop itself."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    @property
    def closed(self) -> bool:
        return self.loop.is_closed()

    def run(self, awaitable: Awaitable[T], timeout: float | None = None) -> T:
        """Run `awaitable` on the loop and wait for its result (its exception is re-raised here)."""
        return asyncio.run_coroutine_threadsafe(_await(awaitable), self.loop).result(timeout)

    def stop(self) -> None:
        """Stop the loop and join its thread; idempotent."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


async def _await(awaitable: Awaitable[T]) -> T:
    # asyncssh returns awaitable wrappers (connect, listen) that are not coroutine objects.
    return await awaitable
