"""MailUp's integer return codes, one enum per call family (mailup-legacy-api.md section 1)."""

from __future__ import annotations

from enum import IntEnum


class Subscribe(IntEnum):
    DONE = 0
    GENERIC_ERROR = 1
    INVALID_ADDRESS = 2
    ALREADY_SUBSCRIBED = 3
    IP_NOT_REGISTERED = -1011


class Unsubscribe(IntEnum):
    DONE = 0
    GENERIC_ERROR = 1
    NOT_SUBSCRIBED = 3
    IP_NOT_REGISTERED = -1011


class Check(IntEnum):
    UNKNOWN = 1
    SUBSCRIBED = 2
    UNSUBSCRIBED = 3
    PENDING = 4
    IP_NOT_REGISTERED = -1011


class Update(IntEnum):
    DONE = 0
    GENERIC_ERROR = 1
    IP_NOT_REGISTERED = -1011


class Activation(IntEnum):
    OK = 0
    WS_NAME_MISSING = -2
    USER_MISSING = -4
    PASSWORD_MISSING = -8
    URL_MISSING = -16
    UNRECOGNISED = -1000
    INVALID_ACCOUNT = -1001
    BAD_PASSWORD = -1002
    SUSPENDED = -1003
    ALREADY_ACTIVE = -1008
    IP_REGISTRATION_ERROR = -1010


IP_NOT_REGISTERED = -1011
