"""Delimited text files as people really send them: Windows code pages, BOMs, quoted newlines,
any of the four usual delimiters, broken rows, and files built to exhaust memory."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from missiva.sync.readers import HostileInput, ReadLimits, UnreadableFile, open_source


class CountingReader(io.RawIOBase):
    """A non-seekable upload stream that records how many bytes were pulled from it."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        self.consumed += len(chunk)
        return len(chunk)


def read_all(data: bytes, filename: str = "list.csv", **options: object) -> tuple[object, list]:
    source = open_source(io.BytesIO(data), filename=filename, **options)  # type: ignore[arg-type]
    with source:
        return source, list(source)


def test_cp1252_semicolon_file_from_excel_is_decoded() -> None:
    text = (
        "Email;Nome;Città;Note\r\n"
        "mario@example.it;Mario;Forlì;“caffè” a 1 €\r\n"
        "anna@example.it;Anna;Cefalù;perché sì\r\n"
    )
    source, records = read_all(text.encode("cp1252"))

    assert source.encoding == "cp1252" and source.delimiter == ";"
    assert source.header == ["Email", "Nome", "Città", "Note"]
    assert records[0].values == {
        "Email": "mario@example.it",
        "Nome": "Mario",
        "Città": "Forlì",
        "Note": "“caffè” a 1 €",
    }
    assert records[1].values["Città"] == "Cefalù"


def test_latin1_file_is_decoded() -> None:
    source, records = read_all(
        "email,città\nluca@example.it,Marsala\nsara@example.it,Città di Castello\n".encode("latin-1")
    )
    assert source.encoding == "latin-1"
    assert records[1].values["città"] == "Città di Castello"


def test_utf8_bom_does_not_leak_into_the_first_column_name() -> None:
    source, records = read_all("email;nome\nzoë@example.it;Zoë\n".encode("utf-8-sig"))
    assert source.header == ["email", "nome"]
    assert records[0].values == {"email": "zoë@example.it", "nome": "Zoë"}


def test_excel_unicode_text_export_utf16_with_tabs_is_read() -> None:
    source, records = read_all(
        "email\tnome\r\nmario@example.it\tMário\r\n".encode("utf-16"), filename="list.txt"
    )
    assert source.delimiter == "\t"
    assert records[0].values == {"email": "mario@example.it", "nome": "Mário"}


def test_quoted_newlines_keep_the_logical_row_numbers_a_user_sees() -> None:
    data = (
        b"email;note\n"
        b'a@example.it;"first line\nsecond line\nthird line"\n'
        b"b@example.it;plain\n"
        b"\n"
        b'c@example.it;"x;y"\n'
    )
    _, records = read_all(data)
    assert [(r.row_number, r.values["email"]) for r in records] == [
        (2, "a@example.it"),
        (3, "b@example.it"),
        (5, "c@example.it"),
    ]
    assert records[0].values["note"] == "first line\nsecond line\nthird line"
    assert records[2].values["note"] == "x;y"


def test_rows_with_the_wrong_number_of_columns_are_reported_with_their_row_numbers() -> None:
    data = (
        b"email;nome;cognome\n"
        b"a@example.it;A;Rossi\n"
        b"b@example.it;B\n"
        b"c@example.it;C;Verdi;extra\n"
        b"d@example.it;D;Neri\n"
    )
    _, records = read_all(data)

    problems = {r.row_number: [str(e) for e in r.errors] for r in records if r.errors}
    assert problems == {
        3: ["row 3: has 2 columns, the header has 3"],
        4: ["row 4: has 4 columns, the header has 3"],
    }
    assert [r.row_number for r in records] == [2, 3, 4, 5]
    assert records[1].values == {"email": "b@example.it", "nome": "B"}


@pytest.mark.parametrize("delimiter", [";", ",", "|", "\t"])
def test_delimiter_is_sniffed(delimiter: str) -> None:
    other = "," if delimiter != "," else ";"
    rows = [
        ["email", "nome", "note"],
        ["a@example.it", "Anna", f"uno{other} due"],
        ["b@example.it", "Bea", "tre"],
    ]
    data = "\n".join(delimiter.join(row) for row in rows).encode()
    source, records = read_all(data)
    assert source.delimiter == delimiter
    assert records[0].values == {"email": "a@example.it", "nome": "Anna", "note": f"uno{other} due"}


def test_a_given_delimiter_and_encoding_win_over_detection() -> None:
    data = "email,nome;cognome\na@example.it,Anna;Rossi\n".encode("cp1252")
    source, records = read_all(data, delimiter=";", encoding="cp1252")
    assert source.header == ["email,nome", "cognome"]
    assert records[0].values["cognome"] == "Rossi"


def test_a_single_column_of_addresses_needs_no_delimiter() -> None:
    source, records = read_all(b"email\na@example.it\nb@example.it\n")
    assert source.header == ["email"]
    assert [r.values["email"] for r in records] == ["a@example.it", "b@example.it"]


def test_mailup_batch_header_with_field_ids_and_pipes() -> None:
    source, records = read_all(b"111|1|2|333\nmario@example.it|Mario|Rossi|3331234567\n")
    assert source.header == ["111", "1", "2", "333"]
    assert records[0].values["333"] == "3331234567"


def test_a_ten_megabyte_field_is_refused_after_reading_a_small_part_of_the_file() -> None:
    data = b"email;note\na@example.it;ok\nb@example.it;" + b"A" * 10_000_000 + b"\n"
    stream = CountingReader(data)
    source = open_source(stream, filename="big.csv")  # type: ignore[arg-type]
    with pytest.raises(HostileInput, match=r"'big.csv': field at row 3 exceeds 65536 bytes"):
        list(source)
    assert stream.consumed < 2_000_000


def test_a_ten_megabyte_quoted_field_spread_over_many_lines_is_refused() -> None:
    data = b'email;note\na@example.it;"' + b"short line\n" * 1_000_000 + b'"\n'
    stream = CountingReader(data)
    with pytest.raises(HostileInput, match="field at row 2 exceeds 65536 bytes"):
        list(open_source(stream, filename="lines.csv"))  # type: ignore[arg-type]
    assert stream.consumed < 2_000_000


def test_field_limit_counts_utf8_bytes_and_names_the_column() -> None:
    data = ("email;note\na@example.it;" + "è" * 40_000 + "\n").encode()  # 80,000 bytes in 40,000 characters
    with pytest.raises(HostileInput, match=r"field at row 2, column 'note', exceeds 65536 bytes"):
        read_all(data)


def test_a_huge_row_of_small_fields_is_refused() -> None:
    data = b"email;x\n" + b";".join([b"a@example.it"] + [b"v"] * 600_000) + b"\n"
    with pytest.raises(HostileInput, match="row 2 exceeds 1048576 bytes"):
        read_all(data)


def test_a_file_over_the_size_limit_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_bytes(b"email\n" + b"a@example.it\n" * 1000)
    with pytest.raises(HostileInput, match=r"'big.csv' is 13006 bytes, over the limit of 10000 bytes"):
        open_source(path, limits=ReadLimits(max_file_bytes=10_000, max_row_bytes=5000, max_field_bytes=5000))


def test_a_stream_that_turns_out_larger_than_the_limit_is_refused_while_reading() -> None:
    stream = CountingReader(b"email\n" + b"a@example.it\n" * 100_000)
    limits = ReadLimits(max_file_bytes=100_000)
    source = open_source(stream, filename="upload.csv", limits=limits)  # type: ignore[arg-type]
    with pytest.raises(HostileInput, match=r"'upload\.csv' is larger than the limit of 100000 bytes"):
        list(source)
    assert stream.consumed <= 100_000 + 64 * 1024


def test_too_many_rows_are_refused() -> None:
    data = b"email\n" + b"a@example.it\n" * 11
    source = open_source(io.BytesIO(data), filename="rows.csv", limits=ReadLimits(max_rows=10))
    with pytest.raises(HostileInput, match="more than 10 rows"):
        list(source)


def test_text_that_does_not_match_the_given_encoding_is_unreadable_with_its_row() -> None:
    data = "email;nome\na@example.it;Anna\nb@example.it;Niccolò\n".encode("cp1252")
    with pytest.raises(UnreadableFile, match="not valid utf-8 text at row 3"):
        read_all(data, encoding="utf-8")


def test_empty_file_and_duplicate_header_columns_are_unreadable() -> None:
    with pytest.raises(UnreadableFile, match="no header row"):
        read_all(b"\n\n")
    with pytest.raises(
        UnreadableFile, match=r"column 'Email' appears twice in the header \(columns 1 and 3\)"
    ):
        read_all(b"email;nome;Email\na;b;c\n")


def test_legacy_xls_is_refused_with_advice() -> None:
    with pytest.raises(UnreadableFile, match=r"legacy Excel \(.xls\).*save it as .xlsx or CSV"):
        read_all(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, filename="list.xls")
