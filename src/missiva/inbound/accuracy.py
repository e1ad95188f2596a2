"""Accuracy of the classifier on a labelled corpus (a folder of .eml files and an expected.json).

``python -m missiva.inbound.accuracy tests/data/bounces`` prints per-field, per-kind and per-MTA
figures and the list of mismatches, for the README and for judging a change to the rules.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from missiva.inbound.classify import classify

FIELDS = ("kind", "status", "recipient")


class CorpusError(ValueError):
    """The corpus folder is missing its expected.json, or the file names a message that is not there."""


def accuracy_report(corpus_dir: str | Path) -> dict[str, Any]:
    """Classify every message listed in ``expected.json`` and compare field by field.

    Returns ``{"total": n, "fields": {field: ratio}, "by_kind": {kind: {"n", "kind"}},
    "by_mta": {...}, "mismatches": [{"file", "field", "expected", "got"}]}``.
    """
    folder = Path(corpus_dir)
    expected_path = folder / "expected.json"
    if not expected_path.is_file():
        raise CorpusError(f"{expected_path} not found")
    expected: dict[str, dict[str, Any]] = json.loads(expected_path.read_text())
    correct = dict.fromkeys(FIELDS, 0)
    by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_mta: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    mismatches = []
    for name, want in sorted(expected.items()):
        path = folder / name
        if not path.is_file():
            raise CorpusError(f"{name} is listed in expected.json but missing from {folder}")
        got = classify(path.read_bytes()).to_dict()
        all_right = True
        for field in FIELDS:
            if got[field] == want[field]:
                correct[field] += 1
            else:
                all_right = False
                mismatches.append({"file": name, "field": field, "expected": want[field], "got": got[field]})
        by_kind[want["kind"]][0] += 1
        by_kind[want["kind"]][1] += got["kind"] == want["kind"]
        by_mta[want["mta"]][0] += 1
        by_mta[want["mta"]][1] += all_right
    total = len(expected)
    return {
        "total": total,
        "fields": {f: (correct[f] / total if total else 0.0) for f in FIELDS},
        "by_kind": {k: {"n": n, "kind": ok / n} for k, (n, ok) in sorted(by_kind.items())},
        "by_mta": {m: {"n": n, "all_fields": ok / n} for m, (n, ok) in sorted(by_mta.items())},
        "mismatches": mismatches,
    }


def format_report(report: dict[str, Any]) -> str:
    """A plain-text table of an accuracy report."""
    lines = [f"messages: {report['total']}", "", "field       accuracy"]
    lines += [f"{f:<11} {v:6.1%}" for f, v in report["fields"].items()]
    lines += ["", "kind         n   kind accuracy"]
    lines += [f"{k:<11} {v['n']:3}   {v['kind']:6.1%}" for k, v in report["by_kind"].items()]
    lines += ["", "mta                      n   all fields right"]
    lines += [f"{m:<23} {v['n']:3}   {v['all_fields']:6.1%}" for m, v in report["by_mta"].items()]
    if report["mismatches"]:
        lines += ["", "mismatches:"]
        lines += [
            f"  {m['file']}: {m['field']} expected {m['expected']!r} got {m['got']!r}"
            for m in report["mismatches"]
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the accuracy table of the corpus named on the command line."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m missiva.inbound.accuracy CORPUS_DIR", file=sys.stderr)
        return 2
    print(format_report(accuracy_report(args[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
