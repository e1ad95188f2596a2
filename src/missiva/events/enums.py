"""The closed vocabularies of the events domain."""

from __future__ import annotations

from enum import StrEnum

from missiva.delivery import outcomes as _outcomes


class Format(StrEnum):
    """How an endpoint wants its events: signed JSON, or MailUp's form parameters."""

    NATIVE = "native"
    MAILUP = "mailup"


class DeliveryStatus(StrEnum):
    """Where one outbox row stands.

    `pending` rows wait for their turn (or are claimed by a dispatcher, whose lease is their next
    attempt time); `dead` rows failed for the whole retry window or hit a 410; `cancelled` rows had
    nothing left to send (the recipient was deleted and its personal data erased first).
    """

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"
    CANCELLED = "cancelled"


class Encryption(StrEnum):
    """MailUp's optional RC4 + Base64 encryption, in the two shapes public receivers decode.

    - magento: each parameter NAME is Base64(RC4(key, query string)) (MailUp's Magento module);
    - joomla: the whole query string is Base64(RC4(key, query string)), URL-encoded (Joomla module).
    """

    NONE = "none"
    MAGENTO = "magento"
    JOOMLA = "joomla"


class HttpMethod(StrEnum):
    GET = "GET"
    POST = "POST"


class Health(StrEnum):
    """An endpoint's state as the delivery log shows it."""

    HEALTHY = "healthy"
    FAILING = "failing"
    UNHEALTHY = "unhealthy"
    DISABLED = "disabled"


# Message outcomes (delivered, bounced, complained, opened, clicked) are the highest-volume events
# there are: an endpoint gets them only when it names them in its event types (an endpoint with no
# filter receives every audience event, not these).
MESSAGE_EVENT_TYPES = _outcomes.MESSAGE_EVENT_TYPES
