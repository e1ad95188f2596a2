"""Benchmark: click redirects/s and open pixels/s served with the event recorded, on SQLite and PostgreSQL.

Starts `missiva serve` (1 HTTP process on SQLite, 2 on PostgreSQL, as bench/subscribe.py) with a
tracked mailing of 20 links, and drives it with wrk: `GET /t/c/<token>` (302, one event row each) and
`GET /t/o/<token>.gif`, tokens of 5,000 recipients in turn. The ceiling is the same server's trivial
route (`/healthz`, one `SELECT 1`) in the same run. Afterwards the events in the database are compared
with the requests wrk completed.

On PostgreSQL it then measures the report side at scale: a mailing with a 1,000,000-row send ledger and
100,000 tracking events; how fast the roll-up folds events into counters, and how long the mailing
report and a recipient report take.

    python bench/tracking.py [--backend sqlite|postgresql|both] [--duration 3] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from missiva import runtime
from missiva.config import Settings
from missiva.testing.postgres import PostgresServer
from subscribe import free_port, setup_account, start_server, wrk

LINKS = 20
RECIPIENTS = 5000
MAILING_ID = 1
AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
LUA = """
paths = { %(paths)s }
local i = 0
function setup(thread) thread:set("offset", math.random(#paths)) end
function request()
  i = i + 1
  return wrk.format("GET", paths[((i + offset) %% #paths) + 1], {["User-Agent"]="%(agent)s"})
end
"""


def configure(database_url: str, data_dir: Path) -> Settings:
    settings = Settings.from_env({"MISSIVA_DATA_DIR": str(data_dir), "MISSIVA_DATABASE_URL": database_url})
    runtime.configure(settings)
    return settings


def prepare(database_url: str, data_dir: Path, base: str) -> tuple[list[str], list[str]]:
    """A tracked mailing of LINKS links; (click paths, pixel paths) for RECIPIENTS recipients."""
    from missiva.reports import plan
    from missiva.tenancy.models import Account

    configure(database_url, data_dir)
    html = "<html><body>" + "".join(f'<a href="https://shop.example/p/{i}">{i}</a>' for i in range(LINKS))
    with runtime.database().session() as session:
        account_id = session.query(Account.id).scalar()
        tracking = plan.prepare_mailing(
            session,
            mailing_id=MAILING_ID,
            account_id=account_id,
            html=html + "</body></html>",
            text=None,
            base_url=base,
        )
    assert tracking is not None
    clicks, pixels = [], []
    for recipient in range(1, RECIPIENTS + 1):
        urls = tracking.link_values(recipient)
        clicks.append(urls[recipient % LINKS].removeprefix(base))
        pixels.append(urls[-1].removeprefix(base))
    return clicks, pixels


def lua(paths: list[str]) -> str:
    return LUA % {"paths": ",".join(f'"{p}"' for p in paths), "agent": AGENT}


def wrk_total(url: str, script: str, duration: int, connections: int) -> tuple[dict[str, float], int]:
    """`wrk` from subscribe.py, plus the number of requests completed (to compare with recorded events)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "-s", fh.name, url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    os.unlink(fh.name)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": rps, "errors": int(errors.group(1)) if errors else 0}, total


def recorded_events(database_url: str, data_dir: Path) -> int:
    from sqlalchemy import func, select

    from missiva.reports.models import TrackingEvent

    configure(database_url, data_dir)
    with runtime.database().session() as session:
        return int(session.scalar(select(func.count()).select_from(TrackingEvent)) or 0)


def bench_backend(name: str, database_url: str, args: argparse.Namespace) -> dict[str, float]:
    data_dir = Path(tempfile.mkdtemp(prefix=f"missiva-bench-tracking-{name}-"))
    port = free_port()
    setup_account(database_url, data_dir)
    base = f"http://127.0.0.1:{port}"
    clicks, pixels = prepare(database_url, data_dir, base)
    workers = 1 if name == "sqlite" else 2
    proc = start_server(database_url, data_dir, port, workers)
    results: dict[str, list[float]] = {"healthz": [], "clicks": [], "opens": []}
    completed = errors = 0
    try:
        wrk(f"{base}/healthz", None, 2, args.connections)  # warm up
        for _ in range(args.runs):
            results["healthz"].append(wrk(f"{base}/healthz", None, args.duration, args.connections)["rps"])
            for route, paths in (("clicks", clicks), ("opens", pixels)):
                stats, total = wrk_total(base, lua(paths), args.duration, args.connections)
                results[route].append(stats["rps"])
                completed += total
                errors += int(stats["errors"])
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    events = recorded_events(database_url, data_dir)
    medians = {route: statistics.median(values) for route, values in results.items()}
    print(
        f"{name:10} healthz {medians['healthz']:7.0f} req/s   clicks {medians['clicks']:7.0f}/s   "
        f"opens {medians['opens']:7.0f}/s   events recorded {events} of {completed} requests"
        f" ({errors} errors)"
    )
    return medians


def bench_report_scale(database_url: str, recipients: int, events: int) -> None:
    """Report timings on a mailing of `recipients` ledger rows and `events` tracking events (PostgreSQL)."""
    from sqlalchemy import text

    from missiva import migrate
    from missiva.reports import counters, service, wiring

    migrate.upgrade(database_url)
    data_dir = Path(tempfile.mkdtemp(prefix="missiva-bench-scale-"))
    configure(database_url, data_dir)
    wiring.install()
    db = runtime.database()
    started = time.perf_counter()
    with db.session() as s:
        account = s.execute(
            text(
                "INSERT INTO accounts (name, status, created_at)"
                " VALUES ('Scale', 'active', now()) RETURNING id"
            )
        ).scalar_one()
        mailing = s.execute(
            text(
                "INSERT INTO mailings (account_id, kind, channel, name, status, audience, timezone,"
                " throttle_state, resolved, resolved_upto, audience_size, queued, sent, deferred,"
                " hard_bounced, failed, uncertain, suppressed, cancelled_count, suppressed_by_reason,"
                " created_at, updated_at)"
                " VALUES (:a, 'campaign', 'email', 'Scale', 'finished', '{}', 'UTC', '{}', true, 0, :n, 0,"
                " :sent, 0, 0, :failed, 0, 0, 0, '{}', now(), now()) RETURNING id"
            ),
            {"a": account, "n": recipients, "sent": recipients - 1000, "failed": 1000},
        ).scalar_one()
        s.execute(
            text(
                "INSERT INTO send_ledger (mailing_id, account_id, recipient_id, channel, address, state,"
                " reason, attempts, reply_code, sent_at)"
                " SELECT :m, :a, g, 'email', 'r' || g || '@example.org',"
                " CASE WHEN g <= 1000 THEN 'failed' ELSE 'sent' END,"
                " CASE WHEN g <= 500 THEN 'retries_exhausted' END, 1, 250, now() - interval '1 hour'"
                " FROM generate_series(1, :n) g"
            ),
            {"m": mailing, "a": account, "n": recipients},
        )
        s.execute(
            text(
                "INSERT INTO tracked_mailings (mailing_id, account_id, track_opens, track_clicks,"
                " privacy_mode, prepared, started_at)"
                " VALUES (:m, :a, true, true, false, true, now() - interval '1 hour')"
            ),
            {"m": mailing, "a": account},
        )
        s.execute(
            text(
                "INSERT INTO tracked_links (mailing_id, link, url)"
                " SELECT :m, g, 'https://shop.example/p/' || g FROM generate_series(0, 19) g"
            ),
            {"m": mailing},
        )
        s.execute(
            text(
                "INSERT INTO tracking_events (mailing_id, account_id, recipient_id, kind, link, occurred_at,"
                " ua_class, is_bot, is_proxy, counted)"
                " SELECT :m, :a, 1 + (g::bigint * 7919) % :n,"
                " CASE WHEN g % 3 = 0 THEN 'click' ELSE 'open' END,"
                " CASE WHEN g % 3 = 0 THEN g % 20 END, now() - (g % 3600) * interval '1 second', 'desktop',"
                " false, g % 11 = 0, false FROM generate_series(1, :e) g"
            ),
            {"m": mailing, "a": account, "n": recipients, "e": events},
        )
        s.execute(  # three of the recipients, for the recipient report
            text(
                "INSERT INTO recipients (id, account_id, email, fields, created_at, updated_at)"
                " SELECT g, :a, 'r' || g || '@example.org', '{}', now(), now() FROM unnest(:ids) g"
            ),
            {"a": account, "ids": [1, recipients // 2, recipients]},
        )
        s.execute(text("ANALYZE"))
    loaded = time.perf_counter() - started
    print(f"scale      {recipients} ledger rows and {events} events loaded in {loaded:.1f} s")
    started = time.perf_counter()
    folded = counters.roll_up_all(db)
    elapsed = time.perf_counter() - started
    print(
        f"scale      roll-up: {folded} events folded into counters in {elapsed:.1f} s"
        f" ({folded / elapsed:.0f} events/s)"
    )
    timings = []
    for _ in range(7):
        with db.session() as session:
            t0 = time.perf_counter()
            report = service.mailing_report(session, account, mailing)
            timings.append(time.perf_counter() - t0)
    person = []
    for recipient in (1, recipients // 2, recipients):
        with db.session() as session:
            t0 = time.perf_counter()
            seen = service.recipient_report(session, account, email=f"r{recipient}@example.org")
            person.append(time.perf_counter() - t0)
            assert len(seen["mailings"]) == 1
    opens, clicks = report["opens"], report["clicks"]
    print(
        f"scale      mailing report of {recipients} recipients:"
        f" median {statistics.median(timings) * 1000:.1f} ms (opens {opens['total']}, unique"
        f" {opens['unique']}, clicks {clicks['total']}, soft bounces {report['soft_bounces']})"
    )
    print(f"scale      recipient report: median {statistics.median(person) * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--duration", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--scale", type=int, default=1_000_000, help="ledger rows for the report timing (0: skip)"
    )
    parser.add_argument("--scale-events", type=int, default=100_000)
    args = parser.parse_args()
    print(
        f"wrk -t2 -c{args.connections} -d{args.duration}s, median of {args.runs} runs, "
        f"uvicorn workers: 1 on SQLite, 2 on PostgreSQL; {os.cpu_count()} cores"
    )
    headline: dict[str, float] | None = None
    if args.backend in ("sqlite", "both"):
        headline = bench_backend("sqlite", f"sqlite:///{tempfile.mkdtemp()}/bench.db", args)
    if args.backend in ("postgresql", "both"):
        pg = PostgresServer().start(fsync=True)
        try:
            headline = bench_backend("postgresql", pg.create_database("bench"), args)
        finally:
            pg.stop()
        if args.scale:
            scratch = PostgresServer().start()  # bulk loading needs no durability
            try:
                bench_report_scale(scratch.create_database("scale"), args.scale, args.scale_events)
            finally:
                scratch.stop()
    assert headline is not None
    figure, ceiling = headline["clicks"], headline["healthz"]
    print(f"bench tracking: {figure:.0f} clicks/s; ceiling {ceiling:.0f} req/s; ratio {figure / ceiling:.2f}")


if __name__ == "__main__":
    sys.exit(main())
