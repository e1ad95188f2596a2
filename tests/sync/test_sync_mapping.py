"""Column mapping from real headers: MailUp batch ids, campoN, field names, common names."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from missiva.sync.errors import MappingError
from missiva.sync.mapping import ColumnMapping, ColumnTarget, Target
from missiva.sync.readers import Record, RowError, open_source

# The default Italian console layout (docs/mailup-legacy-api.md section 3).
FIELDS = {1: "nome", 2: "cognome", 3: "azienda", 4: "città", 5: "provincia", 11: "telefono"}
DATA = Path(__file__).resolve().parents[1] / "data" / "sync"


def targets(mapping: ColumnMapping) -> dict[str, str]:
    return {column: str(target) for column, target in mapping.columns.items()}


def test_mailup_batch_ids_map_identity_and_numbered_fields() -> None:
    mapping = ColumnMapping.from_header(["111", "1", "2", "222", "333", "11"], FIELDS)
    assert targets(mapping) == {
        "111": "email",
        "1": "field 1",
        "2": "field 2",
        "222": "mobile_prefix",
        "333": "mobile_number",
        "11": "field 11",
    }
    row = mapping.apply(
        Record(
            2,
            {
                "111": " mario@example.it ",
                "1": "Mario",
                "2": "Rossi",
                "222": "+39",
                "333": "3331234567",
                "11": "",
            },
        )
    )
    assert (row.email, row.mobile) == ("mario@example.it", "+393331234567")
    assert row.fields == {1: "Mario", 2: "Rossi", 11: ""}
    assert row.errors == []


def test_full_mobile_id_444_is_taken_as_is() -> None:
    mapping = ColumnMapping.from_header(["444", "1"], FIELDS)
    row = mapping.apply(Record(2, {"444": "+393331234567", "1": "Anna"}))
    assert row.mobile == "+393331234567" and row.email == ""


def test_field_names_match_regardless_of_case_and_accents() -> None:
    mapping = ColumnMapping.from_header(["EMAIL", "Nome", "COGNOME", "Citta", "campo5", "Campo 3"], FIELDS)
    assert targets(mapping) == {
        "EMAIL": "email",
        "Nome": "field 1",
        "COGNOME": "field 2",
        "Citta": "field 4",
        "campo5": "field 5",
        "Campo 3": "field 3",
    }


def test_common_header_names_for_email_mobile_list_and_groups() -> None:
    mapping = ColumnMapping.from_header(["E-mail", "Cellulare", "Lista", "Gruppi"], FIELDS)
    assert targets(mapping) == {
        "E-mail": "email",
        "Cellulare": "mobile_full",
        "Lista": "list",
        "Gruppi": "groups",
    }
    row = mapping.apply(
        Record(
            7,
            {
                "E-mail": "a@example.it",
                "Cellulare": "3331234567",
                "Lista": " 2 ",
                "Gruppi": "VIP, News ,,VIP",
            },
        )
    )
    assert row.list_ref == "2" and row.groups == ["VIP", "News"]


def test_an_account_field_called_like_a_common_name_wins_over_the_guess() -> None:
    mapping = ColumnMapping.from_header(["email", "phone"], {7: "Phone"})
    assert mapping.columns["phone"] == ColumnTarget(Target.FIELD, 7)


def test_a_mobile_column_next_to_a_prefix_column_is_the_number_part() -> None:
    mapping = ColumnMapping.from_header(["email", "prefisso", "cellulare"], FIELDS)
    row = mapping.apply(Record(2, {"email": "", "prefisso": "+39", "cellulare": "3479876543"}))
    assert mapping.columns["cellulare"].kind is Target.MOBILE_NUMBER
    assert row.mobile == "+393479876543"


def test_unknown_columns_and_missing_fields_are_warned_about_once_and_ignored() -> None:
    mapping = ColumnMapping.from_header(["email", "shoe size", "99", "campo0"], FIELDS)
    assert mapping.warnings == [
        "column 'shoe size' matches no field; ignored",
        "column '99' refers to field 99, which the account does not have; ignored",
        "column 'campo0' refers to field 0, which the account does not have; ignored",
    ]
    for n in range(3):
        row = mapping.apply(
            Record(n + 2, {"email": "a@example.it", "shoe size": "42", "99": "x", "campo0": "y"})
        )
        assert row.fields == {}
    assert len(mapping.warnings) == 3


def test_explicit_mapping_overrides_guessing() -> None:
    mapping = ColumnMapping.from_header(
        ["Indirizzo", "Nome", "Note", "Mobile"],
        FIELDS,
        explicit={"indirizzo": "email", "Note": 3, "Mobile": "ignore", "Nome": "campo2"},
    )
    assert targets(mapping) == {
        "Indirizzo": "email",
        "Nome": "field 2",
        "Note": "field 3",
        "Mobile": "ignored",
    }


@pytest.mark.parametrize(
    ("header", "explicit", "message"),
    [
        (["email"], {"mail": "email"}, "names column 'mail', which the file does not have"),
        (["email", "x"], {"x": "campo42"}, "column 'x' is mapped to 'campo42', which refers to field 42"),
        (["email", "e-mail"], None, "columns 'email' and 'e-mail' both map to email"),
        (
            ["Nome", "first name"],
            {"first name": "nome"},
            "columns 'Nome' and 'first name' both map to field 1",
        ),
        (["nome", "cognome"], None, "no column holds an email address or a mobile number"),
    ],
)
def test_impossible_mappings_are_refused(header: list[str], explicit: dict | None, message: str) -> None:
    with pytest.raises(MappingError, match=message):
        ColumnMapping.from_header(header, FIELDS, explicit=explicit)


def test_rows_without_identity_and_reader_errors_end_up_in_row_errors() -> None:
    mapping = ColumnMapping.from_header(["email", "333", "nome"], FIELDS)
    reader_error = RowError(4, None, "has 2 columns, the header has 3")
    row = mapping.apply(Record(4, {"email": "  ", "333": ""}, errors=(reader_error,)))
    assert row.errors == [reader_error, RowError(4, None, "has neither an email address nor a mobile number")]


def test_a_single_space_clears_a_field_while_an_empty_value_does_not() -> None:
    with open_source(DATA / "mailup_subscribers.xml") as source:
        mapping = ColumnMapping.from_header(source.header, FIELDS)
        rows = [mapping.apply(record) for record in source]
    assert mapping.warnings == ["column 'Name' matches no field; ignored"]
    first, second, third = rows
    assert first.fields[11] == "" and first.cleared == {11}
    assert second.fields[3] == "" and second.cleared == {11}
    assert (third.email, third.mobile, third.errors) == ("", "+393479876543", [])
    assert first.mobile == "+393331234567" and first.fields[4] == "Forlì"


def test_mapping_a_whole_csv_file_end_to_end() -> None:
    data = "Email;Nome;Cognome;Gruppi\nmario@example.it;Mario;Rossi;VIP\n;Senza;Email;\n".encode("cp1252")
    with open_source(io.BytesIO(data), filename="list.csv") as source:
        mapping = ColumnMapping.from_header(source.header, FIELDS)
        rows = [mapping.apply(record) for record in source]
    assert [(r.row_number, r.email, r.groups) for r in rows] == [
        (2, "mario@example.it", ["VIP"]),
        (3, "", []),
    ]
    assert [str(e) for e in rows[1].errors] == ["row 3: has neither an email address nor a mobile number"]


def test_list_and_groups_come_from_the_job_unless_the_row_has_its_own() -> None:
    mapping = ColumnMapping.from_header(
        ["email", "lista", "gruppi"], FIELDS, default_list="Newsletter", default_groups=["Clienti"]
    )
    own = mapping.apply(Record(2, {"email": "a@example.it", "lista": "Promo", "gruppi": "VIP"}))
    blank = mapping.apply(Record(3, {"email": "b@example.it", "lista": "", "gruppi": " "}))
    assert (own.list_ref, own.groups) == ("Promo", ["VIP"])
    assert (blank.list_ref, blank.groups) == ("Newsletter", ["Clienti"])

    without_columns = ColumnMapping.from_header(
        ["email"], FIELDS, default_list="7", default_groups=["1", "2"]
    )
    row = without_columns.apply(Record(2, {"email": "c@example.it"}))
    assert (row.list_ref, row.groups) == ("7", ["1", "2"])
