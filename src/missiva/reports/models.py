"""Tables of the reports domain: tracked mailings and their links, raw tracking events, counters.

The request path writes one `TrackingEvent` row and nothing else. A roll-up (`counters.roll_up`) later
takes the not-yet-counted events in batches and folds them into `TrackingCounter` rows with one upsert
per (mailing, metric, key), using `TrackingFirst` to tell a recipient's first open or click from the
next ones. Reports read counters, never count events. Mailing and recipient ids carry no foreign key:
the sending tables live in another domain and tracking data outlives a deleted recipient.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, false, text
from sqlalchemy.orm import Mapped, mapped_column

from missiva.db import Base, BigId, UTCDateTime, utcnow


class EventKind(StrEnum):
    OPEN = "open"
    CLICK = "click"


class Metric(StrEnum):
    """Counter names; keyed metrics (`key` = link index or hour since send) say so."""

    OPENS = "opens"  # human opens
    OPENS_UNIQUE = "opens_unique"
    OPENS_PROXY = "opens_proxy"  # mail-client proxies (Apple MPP, Google, Yahoo): not human
    OPENS_BOT = "opens_bot"
    CLICKS = "clicks"
    CLICKS_UNIQUE = "clicks_unique"  # recipients who clicked at least one link
    CLICKS_BOT = "clicks_bot"  # security scanners and prefetchers
    LINK_CLICKS = "link_clicks"  # key: link index
    LINK_UNIQUE = "link_unique"  # key: link index
    OPENS_BY_HOUR = "opens_hour"  # key: whole hours since the mailing started
    CLICKS_BY_HOUR = "clicks_hour"  # key: whole hours since the mailing started


UNSUBSCRIBED_PREFIX = "unsub:"  # + the reason: unsubscribes the mailing caused, from audience events


class TrackingPreferences(Base):
    """An account's tracking defaults; privacy mode keeps recipients out of opens and clicks."""

    __tablename__ = "tracking_preferences"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    privacy_mode: Mapped[bool] = mapped_column(Boolean, default=False)
    track_opens: Mapped[bool] = mapped_column(Boolean, default=True)
    track_clicks: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class TrackedMailing(Base):
    """How one mailing is tracked, fixed when its message is compiled for sending."""

    __tablename__ = "tracked_mailings"

    mailing_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    track_opens: Mapped[bool] = mapped_column(Boolean, default=True)
    track_clicks: Mapped[bool] = mapped_column(Boolean, default=True)
    privacy_mode: Mapped[bool] = mapped_column(Boolean, default=False)
    # True once the links are stored: the settings above are then fixed.
    prepared: Mapped[bool] = mapped_column(Boolean, default=False)
    # When sending started: "hours since send" counts from here.
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TrackedLink(Base):
    """One original URL of a mailing's message: the only place a click on that mailing may lead."""

    __tablename__ = "tracked_links"

    mailing_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    link: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    url: Mapped[str] = mapped_column(Text)


class TrackingEvent(Base):
    """One open or click as it arrived; `counted` turns true once a roll-up has folded it in."""

    __tablename__ = "tracking_events"
    __table_args__ = (
        Index("ix_tracking_events_mailing", "mailing_id", "id"),
        Index("ix_tracking_events_recipient", "recipient_id", "mailing_id"),
        Index(
            "ix_tracking_events_pending",
            "id",
            postgresql_where=text("NOT counted"),
            sqlite_where=text("NOT counted"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    mailing_id: Mapped[int] = mapped_column(Integer)
    account_id: Mapped[int] = mapped_column(Integer)
    recipient_id: Mapped[int | None] = mapped_column(BigId)  # NULL in privacy mode
    kind: Mapped[str] = mapped_column(String(5))
    link: Mapped[int | None] = mapped_column(Integer)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ua_class: Mapped[str] = mapped_column(String(12))
    is_bot: Mapped[bool] = mapped_column(Boolean, default=False)
    is_proxy: Mapped[bool] = mapped_column(Boolean, default=False)
    counted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class TrackingCounter(Base):
    """One number of a mailing's report, maintained incrementally by the roll-up."""

    __tablename__ = "tracking_counters"

    mailing_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    metric: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False, default=0)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class TrackingFirst(Base):
    """A recipient's first human open, first click, and first click on each link of a mailing.

    ``link`` is -1 for "an open" and "any link"; its existence is what makes the next one not unique.
    """

    __tablename__ = "tracking_firsts"

    mailing_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    recipient_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(5), primary_key=True)
    link: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
