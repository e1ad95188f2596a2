"""Guess the text encoding of an import file from a bounded sample of its first bytes.

Order: a byte-order mark wins; then strict UTF-8 (what modern tools write); then charset-normalizer.
Our users are mostly Western European and charset-normalizer, on a short sample, often names a
sibling code page (cp1258, cp1250) that decodes the same bytes identically; when a Western code
page fits as well as its best guess, we take the Western one. Between cp1252 and latin-1 the bytes
0x80-0x9F decide: they are printable in cp1252 (€, curly quotes) and control codes in latin-1.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

import charset_normalizer

from missiva.sync.errors import UnreadableFile

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_WESTERN = {"cp1252", "latin_1", "iso8859_15"}
# The five bytes cp1252 leaves undefined: a file holding them cannot be cp1252.
_CP1252_UNDEFINED = frozenset(b"\x81\x8d\x8f\x90\x9d")
_C1 = range(0x80, 0xA0)
# charset-normalizer's "chaos" is 0..1; guesses this close to the best one are equally plausible.
_CHAOS_TOLERANCE = 0.01


@dataclass(frozen=True)
class DetectedEncoding:
    """The codec to decode with and how we decided, for the import report."""

    name: str
    reason: str


def detect_encoding(sample: bytes, *, complete: bool) -> DetectedEncoding:
    """Pick a codec for a file whose first bytes are `sample` (`complete` when it is the whole file)."""
    for bom, name in _BOMS:
        if sample.startswith(bom):
            return DetectedEncoding(name, "byte-order mark")
    if _is_utf8(sample, complete=complete):
        return DetectedEncoding("utf-8", "valid UTF-8")
    matches = charset_normalizer.from_bytes(sample)
    best = matches.best()
    if best is None:
        # No code page decodes the sample cleanly; latin-1 decodes anything, so say where it failed.
        raise UnreadableFile("cannot tell the text encoding; save the file as UTF-8 or give its encoding")
    for match in matches:
        if match.chaos > best.chaos + _CHAOS_TOLERANCE:
            continue
        candidates = {codecs.lookup(e).name.replace("-", "_") for e in match.could_be_from_charset}
        candidates.add(codecs.lookup(match.encoding).name.replace("-", "_"))
        if candidates & _WESTERN:
            return _western(sample)
    return DetectedEncoding(codecs.lookup(best.encoding).name, "charset-normalizer")


def _is_utf8(sample: bytes, *, complete: bool) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    try:
        decoder.decode(sample, final=complete)
    except UnicodeDecodeError:
        return False
    return True


def _western(sample: bytes) -> DetectedEncoding:
    c1 = {b for b in sample if b in _C1}
    if c1 and not c1 & _CP1252_UNDEFINED:
        return DetectedEncoding("cp1252", "Western text with cp1252 punctuation (0x80-0x9F)")
    return DetectedEncoding("latin-1", "Western text without cp1252-only characters")
