"""A mailing's tracking plan: settings fixed at send time, its link list stored, per-recipient URLs.

The sender calls `prepare_mailing` once per run before compiling the message: it rewrites the links,
stores the mailing's tracking row and link list (idempotent, so several workers of one mailing agree),
and returns a `TrackingPlan` whose `link_values` the message skeleton calls per recipient.

Privacy mode (an account preference, frozen on the mailing when it starts) puts recipient 0 into every
token: the links identify the mailing and the link, never the person.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from missiva import runtime
from missiva.db import insert_ignore, utcnow
from missiva.errors import Conflict, NotFound
from missiva.reports.links import RewrittenContent, rewrite
from missiva.reports.models import TrackedLink, TrackedMailing, TrackingPreferences
from missiva.reports.tokens import OPEN, TokenSigner, signer_for

CLICK_PATH = "/t/c/"
OPEN_PATH = "/t/o/"


@dataclass(frozen=True)
class Preferences:
    """An account's tracking preferences (defaults when it never set any)."""

    privacy_mode: bool = False
    track_opens: bool = True
    track_clicks: bool = True


def preferences(session: Session, account_id: int) -> Preferences:
    """The account's tracking preferences."""
    row = session.get(TrackingPreferences, account_id)
    if row is None:
        return Preferences()
    return Preferences(row.privacy_mode, row.track_opens, row.track_clicks)


def set_preferences(
    session: Session,
    account_id: int,
    *,
    privacy_mode: bool | None = None,
    track_opens: bool | None = None,
    track_clicks: bool | None = None,
) -> Preferences:
    """Change an account's preferences; mailings already started keep the settings they started with."""
    row = session.get(TrackingPreferences, account_id)
    if row is None:
        row = TrackingPreferences(
            account_id=account_id, privacy_mode=False, track_opens=True, track_clicks=True
        )
        session.add(row)
    if privacy_mode is not None:
        row.privacy_mode = privacy_mode
    if track_opens is not None:
        row.track_opens = track_opens
    if track_clicks is not None:
        row.track_clicks = track_clicks
    session.flush()
    return Preferences(row.privacy_mode, row.track_opens, row.track_clicks)


def configure_mailing(
    session: Session,
    account_id: int,
    mailing_id: int,
    *,
    opens: bool | None = None,
    clicks: bool | None = None,
) -> TrackedMailing:
    """Turn opens and/or clicks tracking on or off for one mailing before it starts.

    Raises `Conflict` once the mailing's links are stored (it has started): the messages already out
    carry the links they carry.
    """
    row = session.get(TrackedMailing, mailing_id)
    if row is not None and row.account_id != account_id:
        raise NotFound(f"mailing {mailing_id} not found", field="mailing_id")
    if row is not None and row.prepared:
        raise Conflict("the mailing has started; its tracking can no longer change", field="mailing_id")
    prefs = preferences(session, account_id)
    if row is None:
        row = TrackedMailing(
            mailing_id=mailing_id,
            account_id=account_id,
            track_opens=prefs.track_opens,
            track_clicks=prefs.track_clicks,
            privacy_mode=prefs.privacy_mode,
            prepared=False,
        )
        session.add(row)
    if opens is not None:
        row.track_opens = opens
    if clicks is not None:
        row.track_clicks = clicks
    session.flush()
    return row


@dataclass
class TrackingPlan:
    """The rewritten content of one mailing and the per-recipient URLs for its link slots."""

    mailing_id: int
    content: RewrittenContent
    privacy_mode: bool
    base_url: str
    signer: TokenSigner
    _indexes: list[int] = field(default_factory=list, repr=False)
    _shared: list[str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._indexes = list(range(len(self.content.urls)))
        if self.content.pixel:
            self._indexes.append(OPEN)
        self._click = self.base_url.rstrip("/") + CLICK_PATH
        self._open = self.base_url.rstrip("/") + OPEN_PATH

    def link_values(self, recipient_id: str | int) -> list[str]:
        """One recipient's click URLs in link order, then the pixel URL; shared by all in privacy mode."""
        if self.privacy_mode:
            if self._shared is None:
                self._shared = self._urls(0)
            return self._shared
        return self._urls(int(recipient_id))

    def _urls(self, recipient_id: int) -> list[str]:
        tokens = self.signer.links_for(self.mailing_id, recipient_id, self._indexes)
        click = self._click
        out = [click + token for token in tokens[: len(self.content.urls)]]
        if self.content.pixel:
            out.append(self._open + tokens[-1] + ".gif")
        return out


def prepare_mailing(
    session: Session,
    *,
    mailing_id: int,
    account_id: int,
    html: str | None,
    text: str | None,
    base_url: str | None = None,
) -> TrackingPlan | None:
    """Freeze the mailing's tracking, store its links, and return the plan (None: nothing tracked).

    Call it in the session that starts sending, before any message is rendered. Every worker of the
    mailing gets the same plan: the rewrite is deterministic and the stored links are kept as they are.
    """
    row = session.get(TrackedMailing, mailing_id)
    if row is None:
        prefs = preferences(session, account_id)
        insert_ignore(
            session,
            TrackedMailing,
            {
                "mailing_id": mailing_id,
                "account_id": account_id,
                "track_opens": prefs.track_opens,
                "track_clicks": prefs.track_clicks,
                "privacy_mode": prefs.privacy_mode,
                "prepared": False,
                "started_at": utcnow(),
            },
        )
        row = session.get(TrackedMailing, mailing_id)
        assert row is not None
    if row.account_id != account_id:
        raise NotFound(f"mailing {mailing_id} not found", field="mailing_id")
    settings = runtime.settings()
    base = base_url or settings.base_url
    content = rewrite(html, text, own_base=base, clicks=row.track_clicks, opens=row.track_opens)
    if not row.prepared:
        for index, url in enumerate(content.urls):
            insert_ignore(session, TrackedLink, {"mailing_id": mailing_id, "link": index, "url": url})
        session.execute(
            update(TrackedMailing)
            .where(TrackedMailing.mailing_id == mailing_id, TrackedMailing.prepared.is_(False))
            .values(prepared=True, started_at=utcnow())
        )
    stored = session.scalars(
        select(TrackedLink.url).where(TrackedLink.mailing_id == mailing_id).order_by(TrackedLink.link)
    ).all()
    if tuple(stored) != content.urls:
        raise Conflict(f"mailing {mailing_id} was started with other links than its content has now")
    if not content.slot_count:
        return None
    return TrackingPlan(
        mailing_id=mailing_id,
        content=content,
        privacy_mode=row.privacy_mode,
        base_url=base,
        signer=signer_for(settings.secret_key),
    )
