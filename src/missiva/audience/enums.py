"""The closed vocabularies of the audience domain, one source of truth each."""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"


class Status(StrEnum):
    SUBSCRIBED = "subscribed"
    PENDING = "pending"
    UNSUBSCRIBED = "unsubscribed"


class OptIn(StrEnum):
    SINGLE = "single"
    DOUBLE = "double"


class Source(StrEnum):
    """Who caused a change: MailUp's EventSource values plus import and system."""

    API = "api"
    CONSOLE = "console"
    RECIPIENT = "recipient"
    IMPORT = "import"
    SYSTEM = "system"


class Reason(StrEnum):
    """Why a recipient was unsubscribed."""

    CONSOLE = "console"
    LINK = "link"
    LIST_UNSUBSCRIBE = "list_unsubscribe"
    API = "api"
    IMPORT = "import"
    HARD_BOUNCE = "hard_bounce"
    COMPLAINT = "complaint"
    SMS_STOP = "sms_stop"
    SOFT_BOUNCES = "soft_bounces"

    @property
    def optout_type(self) -> int:
        """MailUp's numeric `optout_type` for this reason (unsubscriber exports, webhooks)."""
        return _OPTOUT_TYPE[self]


# MailUp documents 0/01 forced from console, 2 unsubscribe link, 4 imported, 8 hard bounce, 16 feedback
# loop; the list is incomplete, so reasons MailUp has no code for reuse the nearest documented one.
_OPTOUT_TYPE = {
    Reason.CONSOLE: 0,
    Reason.API: 1,
    Reason.LINK: 2,
    Reason.LIST_UNSUBSCRIBE: 2,
    Reason.IMPORT: 4,
    Reason.HARD_BOUNCE: 8,
    Reason.SOFT_BOUNCES: 8,
    Reason.COMPLAINT: 16,
    Reason.SMS_STOP: 2,
}


class EventType(StrEnum):
    """Audience event types, as they appear in webhooks and the event feed."""

    SUBSCRIPTION_REQUESTED = "subscription.requested"
    SUBSCRIPTION_CONFIRMED = "subscription.confirmed"
    SUBSCRIPTION_UNSUBSCRIBED = "subscription.unsubscribed"
    RECIPIENT_UPDATED = "recipient.updated"
    RECIPIENT_DELETED = "recipient.deleted"


# MailUp's standard personal-data fields (Italian console layout), numbered campo1..campo11.
DEFAULT_FIELDS = (
    "nome",
    "cognome",
    "azienda",
    "citta",
    "provincia",
    "cap",
    "regione",
    "paese",
    "indirizzo",
    "fax",
    "telefono",
)


class Language(StrEnum):
    """Languages recipient-facing pages and messages are available in."""

    EN = "en"
    IT = "it"
