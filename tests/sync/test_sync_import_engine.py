"""The import engine against a real database (SQLite and PostgreSQL): what a list owner sees after an
import, per MailUp's options, and what the run reports."""

from __future__ import annotations

import io
import mailbox
import re
import zipfile
from pathlib import Path

import pytest
from import_helpers import audience_state, count, counters, import_file, make_list
from sqlalchemy import select

import missiva.jobs  # noqa: F401  - the worker's listeners (confirmation mails), as in production
from missiva.audience import subscriptions as subs_svc
from missiva.audience.models import AudienceEvent, Recipient, Subscription
from missiva.sync.importer import run_errors
from missiva.sync.readers import ReadLimits


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def recipient(db, email: str) -> Recipient | None:
    with db.session() as session:
        return session.scalar(select(Recipient).where(Recipient.email == email))


def status_of(db, email: str, list_id: int, channel: str = "email") -> str | None:
    with db.session() as session:
        return session.scalar(
            select(Subscription.status)
            .join(Recipient, Recipient.id == Subscription.recipient_id)
            .where(Recipient.email == email, Subscription.list_id == list_id, Subscription.channel == channel)
        )


def errors_of(db, run) -> list[tuple[int, str | None, str]]:
    with db.session() as session:
        return [(e["row"], e["column"], e["reason"]) for e in run_errors(session, run.id)]


def test_excel_cp1252_file_imports_valid_rows_and_reports_each_invalid_one(db, account, tmp_path):
    lst = make_list(db, account["id"], groups=("VIP",))
    text = (
        "Email;Nome;Città;Gruppi\r\n"
        "mario.rossi@example.it;Mario;Città di Castello;VIP\r\n"
        'anna@example.it;"Anna\r\nMaria";Forlì;\r\n'  # a quoted newline: still one row (row 3)
        "not-an-address;Bad;Roma;\r\n"
        "MARIO.ROSSI@example.it;Mario Secondo;Perugia;VIP\r\n"  # duplicate: the later row wins
        ";Nobody;Roma;\r\n"
        "luca@example.it;Luca;Roma;Nonexistent\r\n"
    )
    run = import_file(db, account["id"], write(tmp_path, "excel.csv", text, "cp1252"), list_id=lst["id"])

    assert run.status == "completed"
    assert counters(run) == {
        "total": 6,
        "new": 2,
        "updated": 0,
        "unchanged": 0,
        "unsubscribed": 0,
        "skipped": 1,
        "errors": 3,
    }
    errors = errors_of(db, run)
    assert [(row, column) for row, column, _ in errors] == [(4, "Email"), (6, None), (7, "Gruppi")]
    assert "invalid email 'not-an-address'" in errors[0][2]
    assert "neither an email address nor a mobile number" in errors[1][2]
    assert "group 'Nonexistent'" in errors[2][2]
    mario = recipient(db, "mario.rossi@example.it")
    assert mario is not None and mario.fields == {"1": "Mario Secondo", "4": "Perugia"}
    anna = recipient(db, "anna@example.it")
    assert anna is not None and anna.fields == {"1": "Anna\r\nMaria", "4": "Forlì"}
    assert status_of(db, "anna@example.it", lst["id"]) == "subscribed"
    assert recipient(db, "luca@example.it") is None
    assert audience_state(db, account["id"])["groups"] == [("mario.rossi@example.it", "VIP")]


def test_utf8_file_with_bom_and_mailup_field_ids(db, account, tmp_path):
    lst = make_list(db, account["id"])
    text = "\ufeff111;1;2;444\nGiulia@Example.it;Giulia;Bianchi;+39 333 123 4567\nx@example.it;;;12\n"
    run = import_file(db, account["id"], write(tmp_path, "ids.csv", text), list_id=lst["id"])
    assert (run.rows_new, run.rows_errors) == (1, 1)
    assert errors_of(db, run)[0][:2] == (3, "444")
    giulia = recipient(db, "giulia@example.it")
    assert giulia is not None and giulia.mobile == "+393331234567"
    assert giulia.fields == {"1": "Giulia", "2": "Bianchi"}


def test_the_same_file_twice_changes_nothing_the_second_time(db, account, tmp_path):
    lst = make_list(db, account["id"], groups=("A", "B"))
    rows = "".join(f"u{i}@example.it;Name{i};{'A' if i % 2 else 'B'}\n" for i in range(250))
    path = write(tmp_path, "twice.csv", "email;nome;groups\n" + rows)
    first = import_file(db, account["id"], path, list_id=lst["id"], batch_size=100)
    state = audience_state(db, account["id"])
    second = import_file(db, account["id"], path, list_id=lst["id"], batch_size=100)

    assert first.rows_new == 250
    assert counters(second) == {**counters(first), "new": 0, "unchanged": 250}
    assert audience_state(db, account["id"]) == state


def test_every_change_records_its_event_with_source_import(db, account, tmp_path):
    lst = make_list(db, account["id"], groups=("VIP",))
    import_file(
        db, account["id"], write(tmp_path, "a.csv", "email;nome\na@example.it;Anna\n"), list_id=lst["id"]
    )
    path = write(tmp_path, "b.csv", "email;nome;groups\na@example.it;Annalisa;VIP\nb@example.it;Bea;\n")
    run = import_file(db, account["id"], path, list_id=lst["id"])
    assert (run.rows_new, run.rows_updated) == (1, 1)

    with db.session() as session:
        evs = session.scalars(select(AudienceEvent).order_by(AudienceEvent.id)).all()
    assert [(e.type, e.data["email"], e.source) for e in evs] == [
        ("subscription.confirmed", "a@example.it", "import"),
        ("recipient.updated", "a@example.it", "import"),
        ("subscription.confirmed", "b@example.it", "import"),
    ]
    updated = evs[1]
    assert updated.list_id == lst["id"]
    assert updated.data["changes"] == {
        "fields": {"1": ["Anna", "Annalisa"]},
        "groups_added": [lst["groups"]["VIP"]],
    }
    assert updated.data["groups"] == [{"id": lst["groups"]["VIP"], "list_id": lst["id"]}]
    assert updated.data["subscriptions"] == [
        {"list_id": lst["id"], "channel": "email", "status": "subscribed"}
    ]
    assert evs[0].data["previous_status"] is None and evs[0].channel == "email"


def test_default_import_keeps_unsubscribed_and_pending_recipients_as_they_are(db, account, tmp_path):
    lst = make_list(db, account["id"])
    with db.session() as session:
        for email in ("out@example.it", "in@example.it"):
            subs_svc.subscribe(session, account["id"], lst["id"], email=email, fields={"nome": "Old"})
        subs_svc.unsubscribe(session, account["id"], lst["id"], email="out@example.it", reason="link")
        subs_svc.subscribe(session, account["id"], lst["id"], email="wait@example.it", double_opt_in=True)
    path = write(
        tmp_path,
        "d.csv",
        "email;nome\nout@example.it;New\nwait@example.it;New\nin@example.it;New\nfresh@example.it;New\n",
    )
    run = import_file(db, account["id"], path, list_id=lst["id"])

    assert (run.rows_new, run.rows_updated, run.rows_skipped) == (1, 1, 2)
    assert status_of(db, "out@example.it", lst["id"]) == "unsubscribed"
    assert status_of(db, "wait@example.it", lst["id"]) == "pending"
    assert recipient(db, "out@example.it").fields == {"1": "Old"}  # skipped rows change nothing
    assert recipient(db, "in@example.it").fields == {"1": "New"}


def test_force_opt_in_resubscribes_and_as_opt_out_unsubscribes_with_reason_import(db, account, tmp_path):
    lst = make_list(db, account["id"])
    with db.session() as session:
        subs_svc.subscribe(session, account["id"], lst["id"], email="out@example.it")
        subs_svc.unsubscribe(session, account["id"], lst["id"], email="out@example.it", reason="link")
    forced = import_file(
        db,
        account["id"],
        write(tmp_path, "f.csv", "email\nout@example.it\n"),
        list_id=lst["id"],
        force_opt_in=True,
    )
    assert forced.rows_updated == 1 and status_of(db, "out@example.it", lst["id"]) == "subscribed"

    path = write(tmp_path, "o.csv", "email\nout@example.it\nnever@example.it\n")
    opt_out = import_file(db, account["id"], path, list_id=lst["id"], as_opt_out=True)
    assert opt_out.rows_unsubscribed == 2
    with db.session() as session:
        subs = session.scalars(select(Subscription).where(Subscription.list_id == lst["id"])).all()
        events = session.scalars(
            select(AudienceEvent).where(
                AudienceEvent.type == "subscription.unsubscribed", AudienceEvent.source == "import"
            )
        ).all()
    assert {(s.status, s.unsubscribe_reason, s.unsubscribe_source) for s in subs} == {
        ("unsubscribed", "import", "import")
    }
    assert sorted(e.data["email"] for e in events) == ["never@example.it", "out@example.it"]
    assert {e.data["optout_type"] for e in events} == {4}
    again = import_file(db, account["id"], path, list_id=lst["id"], as_opt_out=True)
    assert (again.rows_unchanged, again.rows_unsubscribed) == (2, 0)


def test_as_pending_waits_for_confirmation_and_sends_it_only_when_asked(db, settings, account, tmp_path):
    lst = make_list(db, account["id"])
    path = write(tmp_path, "p.csv", "email\nquiet@example.it\n")
    import_file(db, account["id"], path, list_id=lst["id"], as_pending=True)
    loud = write(tmp_path, "q.csv", "email\nloud@example.it\n")
    import_file(db, account["id"], loud, list_id=lst["id"], as_pending=True, send_confirmation=True)

    assert status_of(db, "quiet@example.it", lst["id"]) == "pending"
    box = mailbox.Maildir(settings.data_dir / "outbox", create=True)
    assert [m["To"] for m in box] == ["loud@example.it"]
    with db.session() as session:
        requested = session.scalars(
            select(AudienceEvent)
            .where(AudienceEvent.type == "subscription.requested")
            .order_by(AudienceEvent.id)
        ).all()
    assert [(e.data["email"], e.data["send_confirmation"]) for e in requested] == [
        ("quiet@example.it", False),
        ("loud@example.it", True),
    ]


def test_empty_cells_are_ignored_unless_overwrite_and_a_single_space_always_clears(db, account, tmp_path):
    lst = make_list(db, account["id"])
    import_file(
        db,
        account["id"],
        write(tmp_path, "a.csv", "email;nome;cognome;citta\na@example.it;Anna;Rossi;Roma\n"),
        list_id=lst["id"],
    )
    import_file(
        db,
        account["id"],
        write(tmp_path, "b.csv", "email;nome;cognome;citta\na@example.it;;Verdi; \n"),
        list_id=lst["id"],
    )
    assert recipient(db, "a@example.it").fields == {"1": "Anna", "2": "Verdi"}
    run = import_file(
        db,
        account["id"],
        write(tmp_path, "c.csv", "email;nome;cognome\na@example.it;;Verdi\n"),
        list_id=lst["id"],
        overwrite_empty=True,
    )
    assert run.rows_updated == 1 and recipient(db, "a@example.it").fields == {"2": "Verdi"}


def test_replace_groups_makes_the_file_groups_the_only_ones_in_that_list(db, account, tmp_path):
    lst = make_list(db, account["id"], groups=("A", "B", "C"))
    other = make_list(db, account["id"], "Other", groups=("X",))
    import_file(
        db, account["id"], write(tmp_path, "a.csv", "email;groups\na@example.it;A,B\n"), list_id=lst["id"]
    )
    import_file(
        db, account["id"], write(tmp_path, "x.csv", "email;groups\na@example.it;X\n"), list_id=other["id"]
    )
    path = write(tmp_path, "r.csv", "email;groups\na@example.it;C\n")
    run = import_file(db, account["id"], path, list_id=lst["id"], replace_groups=True)

    assert run.rows_updated == 1
    assert audience_state(db, account["id"])["groups"] == [("a@example.it", "C"), ("a@example.it", "X")]
    with db.session() as session:
        event = session.scalars(select(AudienceEvent).order_by(AudienceEvent.id.desc())).first()
    assert event.data["changes"] == {
        "groups_added": [lst["groups"]["C"]],
        "groups_removed": [lst["groups"]["A"], lst["groups"]["B"]],
    }


def test_sms_import_normalises_numbers_with_the_account_country_and_matches_them(db, account, tmp_path):
    lst = make_list(db, account["id"])
    path = write(
        tmp_path, "sms.csv", "prefisso;cellulare;nome\n0039;333 765 4321;Ugo\n;3337654321;Ugo Bis\n;12;Bad\n"
    )
    run = import_file(db, account["id"], path, list_id=lst["id"], channels="sms")
    assert (run.rows_new, run.rows_skipped, run.rows_errors) == (1, 1, 1)
    with db.session() as session:
        sub = session.scalars(select(Subscription)).one()
        person = session.get(Recipient, sub.recipient_id)
    assert (person.mobile, person.email, sub.channel, person.fields) == (
        "+393337654321",
        None,
        "sms",
        {"1": "Ugo Bis"},
    )


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _valid_rows(n: int) -> bytes:
    return b"".join(b"ok%d@example.it;Name\n" % i for i in range(n))


def _hostile_files(tmp_path: Path) -> dict[str, tuple[Path, str, ReadLimits | None]]:
    files: dict[str, tuple[Path, str, ReadLimits | None]] = {}
    big_field = tmp_path / "field.csv"
    big_field.write_bytes(
        b"email;nome\n" + _valid_rows(500) + b"late@example.it;" + b"A" * 10_000_000 + b"\n"
    )
    files["10 MB field"] = (big_field, r"field at row 502 exceeds 65536 bytes", None)

    entities = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    bomb = tmp_path / "bomb.xml"
    bomb.write_text(
        f'<?xml version="1.0"?><!DOCTYPE subscribers [<!ENTITY l0 "lol">{entities}]>'
        '<subscribers><subscriber email="a@example.it"><campo1>&l9;</campo1></subscriber></subscribers>'
    )
    files["XML bomb"] = (bomb, "entit", None)

    zbomb = tmp_path / "zbomb.zip"
    with zipfile.ZipFile(zbomb, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("list.csv", "w") as entry:
        entry.write(b"email\n" + _valid_rows(10))
        for _ in range(120):
            entry.write(bytes(1024 * 1024))
    files["zip bomb"] = (zbomb, "compress", None)

    escape = tmp_path / "escape.zip"
    escape.write_bytes(
        zip_bytes({"good.csv": b"email\n" + _valid_rows(10), "../evil.csv": b"email\nx@example.it\n"})
    )
    files["../ entry"] = (escape, r"'\.\./evil\.csv' escapes the archive", None)

    oversize = tmp_path / "oversize.csv"
    oversize.write_bytes(b"email;nome\n" + _valid_rows(2000))
    files["over the size limit"] = (
        oversize,
        "over the limit of 20000 bytes",
        ReadLimits(max_file_bytes=20_000),
    )
    return files


@pytest.mark.parametrize("kind", ["10 MB field", "XML bomb", "zip bomb", "../ entry", "over the size limit"])
def test_hostile_files_are_refused_with_a_clear_error_and_nothing_is_imported(db, account, tmp_path, kind):
    lst = make_list(db, account["id"])
    path, message, limits = _hostile_files(tmp_path)[kind]
    run = import_file(db, account["id"], path, list_id=lst["id"], batch_size=100, limits=limits)

    assert run.status == "failed"
    assert run.error is not None
    assert re.search(message, run.error, re.IGNORECASE), run.error
    assert count(db, Recipient) == 0 and count(db, Subscription) == 0 and count(db, AudienceEvent) == 0
    assert run.checkpoint == 0 and run.rows_new == 0


def test_mailup_xml_document_imports_email_and_sms_subscribers(db, account):
    lst = make_list(db, account["id"])
    data = Path(__file__).resolve().parent.parent / "data" / "sync" / "mailup_subscribers.xml"
    run = import_file(db, account["id"], data, list_id=lst["id"], channels="both")
    assert run.status == "completed" and (run.rows_new, run.rows_errors) == (3, 0)
    state = audience_state(db, account["id"])
    assert state["recipients"] == [
        (None, "+393479876543", {"1": "Solo", "2": "SMS"}),
        ("anna.bianchi@example.it", None, {"1": "Anna", "2": "Bianchi", "4": "Cefalù"}),
        (
            "mario.rossi@example.it",
            "+393331234567",
            {"1": "Mario", "2": "Rossi", "3": "Rossi & Figli S.r.l.", "4": "Forlì"},
        ),
    ]
    assert [(s[0], s[2]) for s in state["subscriptions"]] == [
        ("+393479876543", "sms"),
        ("anna.bianchi@example.it", "email"),
        ("mario.rossi@example.it", "email"),
        ("mario.rossi@example.it", "sms"),
    ]
