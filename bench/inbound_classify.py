"""Throughput of missiva.inbound.classify() over the bounce corpus.

Figure: messages per second classified, the corpus repeated to about 5,000 messages.
Ceiling: the same messages merely parsed by the standard library (compat32), which classify() must do
at least once. Medians of 5 runs.
"""

from __future__ import annotations

import email
import email.policy
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from missiva.inbound.classify import classify  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "bounces"
TARGET = 5000
RUNS = 5


def messages() -> list[bytes]:
    corpus = [p.read_bytes() for p in sorted(CORPUS.glob("*.eml"))]
    return (corpus * (TARGET // len(corpus) + 1))[:TARGET]


def rate(work, batch: list[bytes]) -> float:
    started = time.perf_counter()
    for raw in batch:
        work(raw)
    return len(batch) / (time.perf_counter() - started)


def main() -> None:
    batch = messages()
    secret = b"bench-secret"
    figures, ceilings = [], []
    for run in range(RUNS):
        figures.append(rate(lambda raw: classify(raw, verp_secret=secret), batch))
        ceilings.append(rate(lambda raw: email.message_from_bytes(raw, policy=email.policy.compat32), batch))
        print(f"run {run + 1}: classify {figures[-1]:,.0f} msg/s, bare parse {ceilings[-1]:,.0f} msg/s")
    figure, ceiling = statistics.median(figures), statistics.median(ceilings)
    print(f"messages per run: {len(batch)} ({len(list(CORPUS.glob('*.eml')))} distinct)")
    ratio = figure / ceiling
    print(f"bench inbound_classify: {figure:.0f} msg/s; ceiling {ceiling:.0f} msg/s; ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
