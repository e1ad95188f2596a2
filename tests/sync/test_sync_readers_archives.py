"""ZIP archives and XLSX workbooks: normal files, and archives built to exhaust or escape."""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import zipfile
from pathlib import Path

import openpyxl
import pytest

from missiva.sync.readers import HostileInput, ReadLimits, UnreadableFile, open_source

MiB = 1024 * 1024


def make_zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


class NonSeekable(io.RawIOBase):
    """An upload arriving over a socket: it can only be read forward."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


@pytest.fixture(scope="session")
def zip_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 MB of zeros in a ZIP of about 200 KB."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.zip"
    zeros = bytes(MiB)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("list.csv", "w") as entry:
        entry.write(b"email\n")
        for _ in range(200):
            entry.write(zeros)
    return path


def test_zip_of_csv_files_yields_every_entry_in_name_order_with_entry_names() -> None:
    data = make_zip(
        {
            "b.csv": "email;nome\nb1@example.it;Bruno\n".encode("cp1252"),
            "a.csv": b"email;nome\na1@example.it;Anna\na2@example.it;Aldo\n",
            "notes.pdf": b"%PDF",
            "__MACOSX/._a.csv": b"junk",
        }
    )
    with open_source(io.BytesIO(data), filename="export.zip") as source:
        records = list(source)
    assert source.format == "zip" and source.header == ["email", "nome"]
    assert [(r.entry, r.row_number, r.values["email"]) for r in records] == [
        ("a.csv", 2, "a1@example.it"),
        ("a.csv", 3, "a2@example.it"),
        ("b.csv", 2, "b1@example.it"),
    ]
    assert source.warnings == ["'export.zip': entry 'notes.pdf' skipped (not CSV or XML)"]


def test_zip_uploaded_as_a_forward_only_stream_is_read() -> None:
    data = make_zip({"list.csv": b"email\nx@example.it\n"})
    records = list(open_source(NonSeekable(data), filename="upload.zip"))  # type: ignore[arg-type]
    assert [r.values for r in records] == [{"email": "x@example.it"}]


def test_zip_bomb_is_refused_from_its_directory_without_inflating(zip_bomb: Path) -> None:
    with pytest.raises(HostileInput, match=r"entry 'list.csv': compression ratio \d{3,4}:1 exceeds 100:1"):
        open_source(zip_bomb)


def test_zip_bomb_is_also_refused_by_total_size_when_the_ratio_is_allowed(zip_bomb: Path) -> None:
    limits = ReadLimits(max_ratio=10_000, max_total_uncompressed=100 * MiB)
    with pytest.raises(HostileInput, match=r"expands to more than 104857600 bytes"):
        open_source(zip_bomb, limits=limits)


def test_an_entry_lying_about_its_size_is_never_inflated_past_what_it_declares() -> None:
    body = b"email\n" + b"someone@example.it\n" * 500_000  # 9.5 MB of text, about 40 KB compressed
    data = bytearray(make_zip({"list.csv": body}))
    declared = 1000
    # Patch the size in the local header (offset 22) and in the central directory (offset 24).
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    data[local + 22 : local + 26] = declared.to_bytes(4, "little")
    data[central + 24 : central + 28] = declared.to_bytes(4, "little")

    with pytest.raises(UnreadableFile, match=r"entry 'list.csv' is corrupt: Bad CRC-32"):
        list(open_source(io.BytesIO(bytes(data)), filename="liar.zip"))


@pytest.mark.parametrize(
    "name", ["../evil.csv", "ok/../../evil.csv", "/etc/evil.csv", "..\\evil.csv", "C:/evil.csv"]
)
def test_entries_escaping_the_archive_are_refused(name: str) -> None:
    data = make_zip({"good.csv": b"email\na@example.it\n", name: b"email\nb@example.it\n"})
    with pytest.raises(HostileInput, match=f"ZIP entry {re.escape(repr(name))} escapes the archive"):
        open_source(io.BytesIO(data), filename="evil.zip")


def test_too_many_entries_nested_archives_and_mismatched_headers_are_refused() -> None:
    many = make_zip({f"part{i:03}.csv": b"email\na@example.it\n" for i in range(101)})
    with pytest.raises(HostileInput, match="has 101 entries, more than the limit of 100"):
        open_source(io.BytesIO(many), filename="many.zip")

    nested = make_zip({"inner.csv": make_zip({"x.csv": b"email\n"})})
    with pytest.raises(HostileInput, match=r"entry 'inner\.csv' is itself an archive"):
        open_source(io.BytesIO(nested), filename="nested.zip")

    mixed = make_zip({"a.csv": b"email;nome\na@example.it;A\n", "b.csv": b"email;cognome\nb@example.it;B\n"})
    with pytest.raises(UnreadableFile, match=r"entry 'b\.csv' has a different header from 'a\.csv'"):
        list(open_source(io.BytesIO(mixed), filename="mixed.zip"))


def test_zip_without_data_files_and_corrupt_zip_are_unreadable() -> None:
    with pytest.raises(UnreadableFile, match="holds no CSV or XML file"):
        open_source(io.BytesIO(make_zip({"photo.jpg": b"\xff\xd8"})), filename="photos.zip")
    with pytest.raises(UnreadableFile, match="not a readable ZIP archive"):
        open_source(io.BytesIO(b"PK\x03\x04" + b"\x00" * 200), filename="broken.zip")


def test_file_size_limit_applies_to_archives_too(tmp_path: Path) -> None:
    path = tmp_path / "list.zip"
    path.write_bytes(make_zip({"list.csv": b"email\n" + os.urandom(60_000).hex().encode()}))
    with pytest.raises(HostileInput, match="over the limit of 50000 bytes"):
        open_source(path, limits=ReadLimits(max_file_bytes=50_000))


def write_workbook(path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Iscritti"
    sheet.append(["Email", "Nome", "Cellulare", "Iscritto il", "Punti", "Attivo"])
    sheet.append(["mario@example.it", "Mario", 3331234567, dt.datetime(2024, 5, 17), 12.5, True])
    sheet.append([None, None, None, None, None, None])
    sheet.append(["anna@example.it", "Anna", 3479876543.0, dt.datetime(2024, 5, 18, 9, 30), None, False])
    sheet.append(["solo@example.it"])
    book.create_sheet("Note").append(["ignored"])
    book.save(path)


def test_xlsx_first_sheet_is_read_with_sheet_row_numbers_and_readable_values(tmp_path: Path) -> None:
    path = tmp_path / "iscritti.xlsx"
    write_workbook(path)
    with open_source(path) as source:
        records = list(source)

    assert source.format == "xlsx"
    assert source.header == ["Email", "Nome", "Cellulare", "Iscritto il", "Punti", "Attivo"]
    assert [r.row_number for r in records] == [2, 4, 5]
    assert records[0].values == {
        "Email": "mario@example.it",
        "Nome": "Mario",
        "Cellulare": "3331234567",
        "Iscritto il": "2024-05-17",
        "Punti": "12.5",
        "Attivo": "true",
    }
    assert records[1].values["Cellulare"] == "3479876543"
    assert records[1].values["Iscritto il"] == "2024-05-18 09:30:00"
    assert records[2].values["Nome"] == "" and not records[2].errors
    assert source.warnings == ["'iscritti.xlsx': only the first sheet, 'Iscritti', is read"]


def test_xlsx_is_recognised_by_content_even_with_a_csv_name(tmp_path: Path) -> None:
    path = tmp_path / "iscritti.xlsx"
    write_workbook(path)
    with open_source(io.BytesIO(path.read_bytes()), filename="export.csv") as source:
        assert source.format == "xlsx"
        assert len(list(source)) == 3


def test_xlsx_carrying_a_compression_bomb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.xlsx"
    write_workbook(path)
    with (
        zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive,
        archive.open("xl/media/pad.bin", "w") as entry,
    ):
        for _ in range(20):
            entry.write(bytes(MiB))
    with pytest.raises(
        HostileInput, match=r"entry 'xl/media/pad.bin': compression ratio \d+:1 exceeds 100:1"
    ):
        open_source(path)
