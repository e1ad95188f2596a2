"""MailUp import XML: the structure MailUp clients send, and the XML attacks we must refuse."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from missiva.sync.readers import HostileInput, UnreadableFile, open_source

DATA = Path(__file__).resolve().parents[1] / "data" / "sync"


def test_mailup_xml_subscribers_are_read_with_attributes_cdata_and_blanking_spaces() -> None:
    with open_source(DATA / "mailup_subscribers.xml") as source:
        records = list(source)

    assert source.format == "xml"
    assert source.header == [
        "email",
        "Prefix",
        "Number",
        "Name",
        "campo1",
        "campo2",
        "campo3",
        "campo4",
        "campo11",
    ]
    assert [r.row_number for r in records] == [1, 2, 3]
    first, second, third = (r.values for r in records)
    assert first["email"] == "mario.rossi@example.it" and first["Number"] == "3331234567"
    assert first["campo3"] == "Rossi & Figli S.r.l." and first["campo4"] == "Forlì"
    assert first["campo11"] == " " and second["campo11"] == " "  # MailUp's "clear this field"
    assert second["campo3"] == "" and third["campo3"] == ""
    assert third["email"] == "" and third["Prefix"] == "+39"


def test_campo0_and_windows_1252_declared_documents_are_accepted() -> None:
    xml = (
        '<?xml version="1.0" encoding="windows-1252"?>'
        '<subscribers><subscriber email="a@example.it"><campo0>x</campo0><campo1>Niccolò</campo1>'
        "</subscriber></subscribers>"
    ).encode("cp1252")
    [record] = list(open_source(io.BytesIO(xml), filename="import.xml"))
    assert record.values == {"email": "a@example.it", "campo0": "x", "campo1": "Niccolò"}


def test_elements_missing_from_the_first_subscriber_are_reported_not_silently_used() -> None:
    xml = (
        b"<subscribers><subscriber email='a@example.it'><campo1>A</campo1></subscriber>"
        b"<subscriber email='b@example.it'><campo1>B</campo1><campo7>late</campo7></subscriber></subscribers>"
    )
    records = list(open_source(io.BytesIO(xml), filename="import.xml"))
    assert records[1].values == {"email": "b@example.it", "campo1": "B"}
    assert [str(e) for e in records[1].errors] == [
        "row 2, column 'campo7': not present in the first subscriber; ignored"
    ]


def test_billion_laughs_is_refused_before_any_expansion() -> None:
    entities = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    bomb = (
        f'<?xml version="1.0"?><!DOCTYPE subscribers [<!ENTITY lol0 "lol">{entities}]>'
        '<subscribers><subscriber email="&lol9;"/></subscribers>'
    ).encode()
    with pytest.raises(HostileInput, match=r"XML entity expansion is forbidden \(entity 'lol0' declared\)"):
        open_source(io.BytesIO(bomb), filename="bomb.xml")


def test_external_entities_are_refused() -> None:
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY secret SYSTEM "file:///etc/passwd">]>'
        b'<subscribers><subscriber email="a@example.it"><campo1>&secret;</campo1></subscriber></subscribers>'
    )
    with pytest.raises(
        HostileInput, match=r"XML external entity 'secret' \(file:///etc/passwd\) is forbidden"
    ):
        open_source(io.BytesIO(xxe), filename="xxe.xml")


def test_a_ten_megabyte_element_is_refused() -> None:
    xml = (
        b"<subscribers><subscriber email='a@example.it'><campo1>"
        + b"A" * 10_000_000
        + b"</campo1></subscriber></subscribers>"
    )
    with pytest.raises(HostileInput, match=r"field at row 1, column 'campo1', exceeds 65536 bytes"):
        open_source(io.BytesIO(xml), filename="big.xml")


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        (b"<contacts><contact/></contacts>", r"the XML root is <contacts>, expected <subscribers>"),
        (b"<subscribers><person/></subscribers>", r"unexpected <person> inside <subscribers>"),
        (b"<subscribers>\n<subscriber email='a'>\n<campo1>x</campo2>", r"not well-formed XML at line 3"),
        (b"<subscribers></subscribers>", r"has no <subscriber> elements"),
        (
            b"<subscribers><subscriber><campo1><b>x</b></campo1></subscriber></subscribers>",
            r"<b> nested inside <campo1>",
        ),
    ],
)
def test_documents_of_another_shape_are_unreadable(xml: bytes, message: str) -> None:
    with pytest.raises(UnreadableFile, match=message):
        list(open_source(io.BytesIO(xml), filename="import.xml"))
