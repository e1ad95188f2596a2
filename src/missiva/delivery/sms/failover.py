"""Several transports for one account: try them by priority, spread load by weight, fail over safely.

Only :class:`NotSent` moves a message to the next transport: it is the one outcome that proves the
message was not taken. :class:`Uncertain` and :class:`Rejected` go back to the caller unchanged:
resending an uncertain message elsewhere could deliver it twice, and a rejected one is refused for
its content or destination, which another route would not change.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby

from missiva.delivery.sms.transport import NotSent, SmsTransport, SubmitResult


@dataclass(frozen=True)
class Route:
    """A transport, its priority (lower is tried first) and its weight among equal priorities."""

    transport: SmsTransport
    priority: int = 0
    weight: float = 1.0


class FailoverTransport:
    """An :class:`SmsTransport` over several routes."""

    def __init__(
        self, routes: Sequence[Route], name: str = "failover", rng: random.Random | None = None
    ) -> None:
        if not routes:
            raise ValueError("failover needs at least one route")
        for route in routes:
            if not route.weight > 0:
                raise ValueError(
                    f"route {route.transport.name!r}: weight must be positive, got {route.weight}"
                )
        self.routes = sorted(routes, key=lambda route: route.priority)
        self._name = name
        self._rng = rng or random.Random()

    @property
    def name(self) -> str:
        """Name of the route group (each result names the transport that took the message)."""
        return self._name

    def order(self) -> list[SmsTransport]:
        """Transports in the order the next message tries them: by priority, then a weighted draw."""
        ordered: list[SmsTransport] = []
        for _, group in groupby(self.routes, key=lambda route: route.priority):
            # Weighted random permutation (Efraimidis-Spirakis): key u^(1/w), largest first.
            keyed = sorted(group, key=lambda route: self._rng.random() ** (1 / route.weight), reverse=True)
            ordered.extend(route.transport for route in keyed)
        return ordered

    async def submit(self, msg_ref: str, dest: str, source: str, text: str) -> SubmitResult:
        """Submit through the first transport that takes it; NotSent only if none could."""
        reasons: list[str] = []
        for transport in self.order():
            try:
                return await transport.submit(msg_ref, dest, source, text)
            except NotSent as exc:
                reasons.append(f"{transport.name}: {exc.reason}")
        raise NotSent(msg_ref, "; ".join(reasons))
