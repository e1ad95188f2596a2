"""The rules behind an import that need no database: MailUp's option semantics and address checking."""

from __future__ import annotations

import random
import string

import pytest
from email_validator import EmailNotValidError, validate_email

from missiva.audience.identity import normalise_email
from missiva.errors import InvalidEmail, InvalidInput
from missiva.sync.importer import ImportOptions
from missiva.sync.importer.policy import Action, decide

STATUSES = (None, "subscribed", "pending", "unsubscribed")


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, ["create_sub", "keep", "skip", "skip"]),
        ({"as_pending": True}, ["create_pending", "keep", "skip", "skip"]),
        ({"as_opt_out": True}, ["create_unsub", "unsubscribe", "unsubscribe", "keep"]),
        ({"force_opt_in": True}, ["create_sub", "keep", "subscribe", "subscribe"]),
        ({"force_opt_in": True, "as_pending": True}, ["create_pending", "keep", "skip", "request"]),
    ],
)
def test_what_each_option_does_to_each_status(options, expected):
    opts = ImportOptions(**options)
    assert [decide(status, opts) for status in STATUSES] == [Action(a) for a in expected]


def test_mailup_import_types_and_contradictory_options():
    assert (
        ImportOptions.from_import_type(5).channels == "sms"
        and ImportOptions.from_import_type(5).overwrite_empty
    )
    assert ImportOptions.from_import_type(3).import_type == 3
    with pytest.raises(InvalidInput, match="importType"):
        ImportOptions.from_import_type(7)
    with pytest.raises(InvalidInput, match="as_opt_out"):
        ImportOptions(as_opt_out=True, force_opt_in=True)
    with pytest.raises(InvalidInput, match="needs as_pending"):
        ImportOptions(send_confirmation=True)
    with pytest.raises(InvalidInput, match="unknown import option 'asPending'"):
        ImportOptions.from_json({"asPending": True})


def _reference(value: str) -> str | None:
    try:
        return validate_email(
            value.strip(), check_deliverability=False, allow_smtputf8=True
        ).normalized.lower()
    except EmailNotValidError:
        return None


def _ours(value: str) -> str | None:
    try:
        return normalise_email(value)
    except InvalidEmail:
        return None


def test_the_fast_address_check_agrees_with_email_validator():
    rng = random.Random(7)
    cases = [
        "Mario.Rossi@Example.IT", "a@b.co", "x@localhost", "x@example.test", "x@xn--80ak6aa92e.com",
        "a..b@example.it", ".a@example.it", "a@-example.it", "a@example-.it", "a@ex--ample.it",
        "a@example.c0m", "user+tag@example.com", "o'brien@example.ie", '"quoted"@example.it', "é@example.it",
        "a@éxample.it", "a@123.com", "a@example.123", "a" * 64 + "@example.it", "a" * 65 + "@example.it",
        "a@" + "b" * 63 + ".it", "a@" + "b" * 64 + ".it", "a@example.onion", "a@sub.example.local",
        "a b@example.it", "a@example.it.",
    ]  # fmt: skip
    atoms = string.ascii_letters + string.digits + "._+-=@!#'"
    for _ in range(20_000):
        local = "".join(rng.choice(atoms) for _ in range(rng.randint(1, 12)))
        labels = [
            "".join(
                rng.choice(string.ascii_lowercase + string.digits + "-") for _ in range(rng.randint(1, 8))
            )
            for _ in range(rng.randint(1, 3))
        ]
        cases.append(f"{local}@{'.'.join(labels)}{rng.choice(['.com', '.it', '', '.test', '.x', '.museum'])}")
    for value in cases:
        assert _ours(value) == _reference(value), value
