"""What an SMS text costs before it is sent, and the payloads that carry it.

A text goes as GSM 03.38 (the 7-bit default alphabet plus its extension table) when every character
fits, otherwise as UCS-2, sent as UTF-16-BE so that emoji travel as surrogate pairs. A concatenated
message carries a 6-octet user data header (8-bit reference, IEI 0x00), which leaves 153 septets or
67 UTF-16 units per part instead of 160 / 70. Parts never split a GSM escape pair or a surrogate pair,
so every part decodes on its own.

The GSM table itself comes from the ``gsm0338`` codec; this module only counts and cuts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import gsm0338  # noqa: F401  (importing registers the "gsm03.38" codec)

Encoding = Literal["gsm7", "ucs2"]

GSM7: Encoding = "gsm7"
UCS2: Encoding = "ucs2"

#: SMPP ``data_coding`` for each encoding: 0 = SMSC default alphabet (GSM 03.38), 8 = UCS-2.
DATA_CODING: dict[Encoding, int] = {GSM7: 0x00, UCS2: 0x08}

#: (single-part limit, per-part limit once concatenated), in septets or UTF-16 units.
LIMITS: dict[Encoding, tuple[int, int]] = {GSM7: (160, 153), UCS2: (70, 67)}

#: An 8-bit concatenation reference counts parts in one octet.
MAX_SEGMENTS = 255

_GSM_CODEC = "gsm03.38"
_ESCAPE = 0x1B


class SmsTextError(ValueError):
    """The text cannot be sent as an SMS (empty, or more parts than a concatenation header can number)."""


@dataclass(frozen=True, slots=True)
class SmsAnalysis:
    """What the sender sees before sending: alphabet, length in units, parts.

    ``unencodable`` lists the characters outside GSM 03.38, i.e. those that forced UCS-2 (each once, in
    order of appearance); it is empty for a GSM-7 text.
    """

    encoding: Encoding
    length_units: int
    segments: int
    per_segment_limit: int
    unencodable: tuple[str, ...]

    @property
    def data_coding(self) -> int:
        """The SMPP ``data_coding`` value for this text."""
        return DATA_CODING[self.encoding]


@dataclass(frozen=True, slots=True)
class ConcatInfo:
    """Where one part sits in a concatenated message (from its user data header)."""

    ref: int
    total: int
    seq: int


def _gsm_septets() -> dict[str, int]:
    """Septets per character of the GSM default alphabet: 1 for the basic table, 2 for the extension."""
    table: dict[str, int] = {}
    for code in range(128):
        if code != _ESCAPE:
            table[bytes([code]).decode(_GSM_CODEC)] = 1
    for code in range(128):
        try:
            char = bytes([_ESCAPE, code]).decode(_GSM_CODEC)
        except UnicodeDecodeError:
            continue
        table.setdefault(char, 2)
    return table


_GSM_SEPTETS = _gsm_septets()
# Fast paths built from the same table: one C-level pass to test, count and encode a text.
_NOT_GSM = re.compile("[^" + re.escape("".join(_GSM_SEPTETS)) + "]")
_GSM_EXTENSION = re.compile("[" + re.escape("".join(c for c, n in _GSM_SEPTETS.items() if n == 2)) + "]")
_GSM_BYTES = {ord(c): c.encode(_GSM_CODEC).decode("latin-1") for c in _GSM_SEPTETS}


def _gsm_encode(text: str) -> bytes:
    """Unpacked septets of a text known to be GSM-encodable (escape pairs for extension characters)."""
    return text.translate(_GSM_BYTES).encode("latin-1")


def _single_part(text: str) -> Encoding | None:
    """The encoding, when the text fits one part; None when it needs cutting (the per-character path)."""
    if _NOT_GSM.search(text) is None:
        return GSM7 if len(text) + len(_GSM_EXTENSION.findall(text)) <= LIMITS[GSM7][0] else None
    if len(text) <= LIMITS[UCS2][0] // 2 or len(text.encode("utf-16-be")) <= 2 * LIMITS[UCS2][0]:
        return UCS2
    return None


def _units(text: str) -> tuple[Encoding, list[int], tuple[str, ...]]:
    """Cost of each character in the encoding the text needs."""
    septets = _GSM_SEPTETS
    costs: list[int] = []
    for char in text:
        cost = septets.get(char)
        if cost is None:
            break
        costs.append(cost)
    else:
        return GSM7, costs, ()
    unencodable = tuple(dict.fromkeys(c for c in text if c not in septets))
    return UCS2, [2 if ord(c) > 0xFFFF else 1 for c in text], unencodable


def analyse(text: str) -> SmsAnalysis:
    """Alphabet, length and number of parts of ``text``, as they would be submitted."""
    encoding, costs, unencodable = _units(text)
    return _analysis(encoding, costs, unencodable)


def _analysis(encoding: Encoding, costs: list[int], unencodable: tuple[str, ...]) -> SmsAnalysis:
    single, multi = LIMITS[encoding]
    total = sum(costs)
    if total <= single:
        return SmsAnalysis(encoding, total, 1 if total else 0, single, unencodable)
    return SmsAnalysis(encoding, total, len(_cut(costs, multi)), multi, unencodable)


def _cut(costs: list[int], limit: int) -> list[tuple[int, int]]:
    """Character ranges of each part: greedy, never splitting a character's units."""
    bounds: list[tuple[int, int]] = []
    start = used = 0
    for index, cost in enumerate(costs):
        if used + cost > limit:
            bounds.append((start, index))
            start, used = index, 0
        used += cost
    bounds.append((start, len(costs)))
    return bounds


def _plan(text: str) -> tuple[Encoding, list[str]]:
    if not text:
        raise SmsTextError("an SMS needs at least one character")
    single = _single_part(text)
    if single is not None:
        return single, [text]
    encoding, costs, _ = _units(text)
    single, multi = LIMITS[encoding]
    bounds = [(0, len(text))] if sum(costs) <= single else _cut(costs, multi)
    if len(bounds) > MAX_SEGMENTS:
        raise SmsTextError(f"text needs {len(bounds)} parts; a concatenated SMS has at most {MAX_SEGMENTS}")
    return encoding, [text[start:end] for start, end in bounds]


def split_text(text: str) -> list[str]:
    """The text of each part, as the handset shows them before reassembly."""
    return _plan(text)[1]


def split(text: str) -> list[bytes]:
    """Payload of each part without header: unpacked GSM septets (data_coding 0) or UTF-16-BE (8)."""
    return encode_parts(text)[1]


def encode_parts(text: str) -> tuple[Encoding, list[bytes]]:
    """The encoding chosen for ``text`` and the payload of each part (one pass, for senders)."""
    encoding, parts = _plan(text)
    if encoding == GSM7:
        return encoding, [_gsm_encode(part) for part in parts]
    return encoding, [part.encode("utf-16-be") for part in parts]


def with_udh(parts: list[bytes], ref: int) -> list[bytes]:
    """Prefix each part with an 8-bit concatenation header ``05 00 03 ref total seq``.

    A single part needs no header and is returned unchanged; set ``esm_class`` UDHI (0x40) only when
    the result has more than one part.
    """
    if not 0 <= ref <= 0xFF:
        raise ValueError(f"concatenation reference must fit in one octet, got {ref}")
    if len(parts) > MAX_SEGMENTS:
        raise SmsTextError(f"{len(parts)} parts; a concatenated SMS has at most {MAX_SEGMENTS}")
    if len(parts) <= 1:
        return list(parts)
    total = len(parts)
    return [bytes((0x05, 0x00, 0x03, ref, total, seq)) + part for seq, part in enumerate(parts, 1)]


def split_udh(short_message: bytes) -> tuple[ConcatInfo | None, bytes]:
    """Separate the user data header of a part sent with UDHI; return its concatenation info, if any.

    Understands both the 8-bit (IEI 0x00) and 16-bit (IEI 0x08) reference forms.
    """
    if not short_message:
        raise SmsTextError("UDHI set but the message is empty")
    udh_length = short_message[0]
    if 1 + udh_length > len(short_message):
        raise SmsTextError(f"user data header claims {udh_length} octets, message has {len(short_message)}")
    header, payload = short_message[1 : 1 + udh_length], short_message[1 + udh_length :]
    concat: ConcatInfo | None = None
    pos = 0
    while pos + 2 <= len(header):
        iei, length = header[pos], header[pos + 1]
        value = header[pos + 2 : pos + 2 + length]
        if iei == 0x00 and length == 3 and len(value) == 3:
            concat = ConcatInfo(ref=value[0], total=value[1], seq=value[2])
        elif iei == 0x08 and length == 4 and len(value) == 4:
            concat = ConcatInfo(ref=int.from_bytes(value[:2], "big"), total=value[2], seq=value[3])
        pos += 2 + length
    return concat, payload


def decode_payload(payload: bytes, data_coding: int) -> str:
    """Text of a received payload (no header) for the SMPP ``data_coding`` it arrived with.

    Undecodable bytes become U+FFFD rather than failing: an inbound "STOP" must still be read even
    when the SMSC mangles another character.
    """
    coding = data_coding & 0x0F if data_coding & 0xF0 == 0xF0 else data_coding
    if coding in (0x00, 0xF0):
        return payload.decode(_GSM_CODEC, errors="replace")
    if coding == 0x01:
        return payload.decode("ascii", errors="replace")
    if coding == 0x08:
        return payload.decode("utf-16-be", errors="replace")
    return payload.decode("latin-1")


def with_opt_out(text: str, suffix: str, separator: str = "\n") -> str:
    """Append the opt-out instruction (e.g. "STOP al 4321") unless the text already ends with it.

    Call :func:`analyse` on the result: the suffix counts towards length and may add a part or, if it
    holds a non-GSM character, switch the whole message to UCS-2.
    """
    suffix = suffix.strip()
    if not suffix:
        raise SmsTextError("opt-out suffix is empty")
    if text.rstrip().casefold().endswith(suffix.casefold()):
        return text
    return f"{text.rstrip()}{separator}{suffix}" if text.strip() else suffix
