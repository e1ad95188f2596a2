"""What the sender is shown before sending: alphabet, length, parts; and the payloads themselves."""

from __future__ import annotations

import pytest

from missiva.delivery.sms.encoding import (
    SmsTextError,
    analyse,
    decode_payload,
    split,
    split_text,
    split_udh,
    with_opt_out,
    with_udh,
)


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("a" * 160, "gsm7", 160, 1),
        ("a" * 161, "gsm7", 161, 2),
        ("a" * 306, "gsm7", 306, 2),
        ("a" * 307, "gsm7", 307, 3),
        ("€" * 80, "gsm7", 160, 1),  # extension characters cost two septets
        ("€" * 81, "gsm7", 162, 2),
        ("àèéìòù ÄÖÑÜ äöñü ΔΦΓΛΩΠΨΣΘΞ £¥§¿¡", "gsm7", 33, 1),
        ("ç" * 70, "ucs2", 70, 1),  # lower-case c-cedilla is not in the default alphabet
        ("ç" * 71, "ucs2", 71, 2),
        ("😀" * 35, "ucs2", 70, 1),  # an emoji is a surrogate pair: two UTF-16 units
        ("😀" * 36, "ucs2", 72, 2),
        ("", "gsm7", 0, 0),
    ],
)
def test_analysis_counts_units_and_parts(text: str, encoding: str, units: int, segments: int) -> None:
    analysis = analyse(text)
    assert (analysis.encoding, analysis.length_units, analysis.segments) == (encoding, units, segments)


def test_analysis_names_the_characters_that_force_ucs2() -> None:
    analysis = analyse("Offerta “speciale” ç 😀 ç")
    assert analysis.unencodable == ("“", "”", "ç", "😀")
    assert analysis.per_segment_limit == 70 and analysis.data_coding == 8


def test_escape_pair_is_never_split_across_parts() -> None:
    text = "a" * 152 + "€" + "b" * 10
    assert split_text(text) == ["a" * 152, "€" + "b" * 10]
    assert split(text)[1] == b"\x1be" + b"b" * 10
    assert all(len(part) <= 153 for part in split("[" * 200))


def test_surrogate_pair_is_never_split_across_parts() -> None:
    text = "x" * 66 + "😀" + "y" * 70  # 138 units: 66 | 2 + 65 | 5
    parts = split(text)
    assert [len(p) for p in parts] == [132, 134, 10]
    assert "".join(p.decode("utf-16-be") for p in parts) == text


def test_concatenation_header_numbers_the_parts_and_round_trips() -> None:
    parts = with_udh(split("ç" * 100), ref=0xA7)
    assert [p[:6] for p in parts] == [bytes((5, 0, 3, 0xA7, 2, 1)), bytes((5, 0, 3, 0xA7, 2, 2))]
    info, payload = split_udh(parts[1])
    assert info is not None and (info.ref, info.total, info.seq) == (0xA7, 2, 2)
    assert decode_payload(payload, 8) == "ç" * 33
    assert with_udh([b"single"], ref=1) == [b"single"]
    with pytest.raises(ValueError, match="one octet"):
        with_udh(parts, ref=256)


def test_16_bit_reference_headers_from_other_senders_are_understood() -> None:
    info, payload = split_udh(bytes((6, 8, 4, 0x12, 0x34, 3, 2)) + b"hi")
    assert info is not None and (info.ref, info.total, info.seq) == (0x1234, 3, 2) and payload == b"hi"
    with pytest.raises(SmsTextError, match="claims"):
        split_udh(bytes((9, 0, 3)))


def test_unsendable_texts_are_refused_with_the_reason() -> None:
    with pytest.raises(SmsTextError, match="at least one character"):
        split("")
    with pytest.raises(SmsTextError, match="at most 255"):
        split("😀" * 34 * 256)


def test_opt_out_suffix_is_added_once_and_counted() -> None:
    text = with_opt_out("Saldi fino al 50%", "STOP al 4321")
    assert text == "Saldi fino al 50%\nSTOP al 4321"
    assert with_opt_out(text, "stop al 4321") == text
    assert analyse(with_opt_out("a" * 150, "STOP al 4321")).segments == 2
    with pytest.raises(SmsTextError):
        with_opt_out("hi", "  ")
