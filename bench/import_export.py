"""Import and export throughput against the ceiling of the same work done bare, PostgreSQL and SQLite.

A generated CSV (email + three personal fields) is imported into an empty list, then again as an
update (every row matches, nothing changes), each in a child process whose peak RSS it reports.
Ceilings, measured in the same run on the same rows:

  PostgreSQL import: COPY of the file into a staging table + one set-based upsert into recipients
  SQLite import:     a bare executemany of the same rows into recipients
  export:            PostgreSQL `COPY (SELECT ...) TO STDOUT` of the same rows; SQLite a bare cursor
                     walk writing the same columns with the csv module

Usage: python bench/import_export.py [--rows 1000000] [--repeat 1] [--batch-size 5000]
The final line is the PostgreSQL import into an empty list against its ceiling.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("MISSIVA_SECRET_KEY", "bench-secret")
os.environ.setdefault("MISSIVA_HUEY_IMMEDIATE", "1")


def generate(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write("email;nome;cognome;citta\n")
        for i in range(rows):
            fh.write(f"user{i}@example{i % 97}.com;Name{i};Surname{i % 1013};City{i % 50}\n")


def peak_rss_kb() -> int:
    """This process's peak resident set size. VmHWM belongs to the process image, whereas ru_maxrss
    survives execve and would report the (larger) parent this child was forked from."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child_import(url: str, account_id: int, list_id: int, path: str, batch_size: int) -> None:
    """Runs in a child process: one import, then its time and peak RSS as JSON on stdout."""
    from missiva.db import get_database
    from missiva.sync.importer import ImportOptions, create_run, run_import

    db = get_database(url)
    with db.session() as session:
        run_id = create_run(session, account_id, Path(path), ImportOptions(list_id=list_id), source="cli").id
    start = time.perf_counter()
    run = run_import(db, run_id, batch_size=batch_size)
    seconds = time.perf_counter() - start
    peak_kb = peak_rss_kb()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_mb": peak_kb / 1024,
                "status": run.status,
                "new": run.rows_new,
                "unchanged": run.rows_unchanged,
                "errors": run.rows_errors,
            }
        )
    )


def timed_import(url: str, account_id: int, list_id: int, path: Path, batch_size: int) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        url,
        str(account_id),
        str(list_id),
        str(path),
        str(batch_size),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["status"] != "completed":
        raise SystemExit(f"import did not complete: {result}")
    return result


def new_account(url: str, name: str) -> tuple[int, int]:
    from missiva.audience import lists
    from missiva.bootstrap import create_account
    from missiva.db import get_database

    with get_database(url).session() as session:
        account = create_account(session, name).account.id
        list_id = lists.create_list(session, account, "bench", opt_in="single").id
    return account, list_id


def pg_import_ceiling(pg_dir: Path, dbname: str, account_id: int, path: Path) -> float:
    import psycopg

    with psycopg.connect(f"host={pg_dir} user=missiva dbname={dbname}") as conn, conn.cursor() as cur:
        start = time.perf_counter()
        cur.execute("CREATE TEMP TABLE staging (email text, nome text, cognome text, citta text)")
        with (
            path.open("rb") as fh,
            cur.copy("COPY staging FROM STDIN WITH (FORMAT csv, DELIMITER ';', HEADER)") as cp,
        ):
            while chunk := fh.read(1 << 20):
                cp.write(chunk)
        cur.execute(
            """INSERT INTO recipients (account_id, email, fields, created_at, updated_at)
            SELECT %s, lower(email), jsonb_build_object('1', nome, '2', cognome, '4', citta), now(), now()
            FROM staging
            ON CONFLICT (account_id, email) DO UPDATE SET fields = excluded.fields
            WHERE recipients.fields IS DISTINCT FROM excluded.fields""",
            (account_id,),
        )
        conn.commit()
        return time.perf_counter() - start


def sqlite_import_ceiling(url: str, account_id: int, path: Path) -> float:
    import sqlite3

    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter=";")
        next(reader)
        now = "2025-01-01 00:00:00.000000"
        rows = [
            (account_id, email.lower(), json.dumps({"1": n, "2": c, "4": t}), now, now)
            for email, n, c, t in reader
        ]
    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    start = time.perf_counter()
    conn.executemany(
        "INSERT INTO recipients (account_id, email, fields, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
        rows,
    )
    conn.commit()
    seconds = time.perf_counter() - start
    conn.close()
    return seconds


def unsubscribe_all(url: str, list_id: int) -> None:
    from sqlalchemy import text

    from missiva.db import get_database

    with get_database(url).session() as session:
        session.execute(
            text(
                "UPDATE subscriptions SET status = 'unsubscribed', unsubscribe_reason = 'link', "
                "unsubscribed_at = created_at WHERE list_id = :l"
            ),
            {"l": list_id},
        )


def export_time(url: str, account_id: int, list_id: int) -> tuple[float, int]:
    from missiva.db import get_database
    from missiva.sync.export import UnsubscriberExport, export_unsubscribers

    spec = UnsubscriberExport(lists_in=(list_id,), fields=(1, 2))
    with tempfile.TemporaryFile() as out, get_database(url).session() as session:
        start = time.perf_counter()
        result = export_unsubscribers(session, account_id, spec, out, record=False)
        return time.perf_counter() - start, result.rows


def pg_export_ceiling(pg_dir: Path, dbname: str, list_id: int) -> float:
    import psycopg

    query = (
        "SELECT r.email, r.mobile, s.list_id, s.unsubscribed_at, s.unsubscribe_reason, "
        "s.unsubscribe_mailing_id, r.fields ->> '1', r.fields ->> '2' FROM subscriptions s "
        f"JOIN recipients r ON r.id = s.recipient_id WHERE s.list_id = {int(list_id)} "
        "AND s.status = 'unsubscribed' ORDER BY s.unsubscribed_at, s.id"
    )
    with psycopg.connect(f"host={pg_dir} user=missiva dbname={dbname}") as conn, conn.cursor() as cur:
        start = time.perf_counter()
        with (
            tempfile.TemporaryFile() as out,
            cur.copy(f"COPY ({query}) TO STDOUT WITH (FORMAT csv, DELIMITER ';')") as cp,
        ):
            for chunk in cp:
                out.write(chunk)
        return time.perf_counter() - start


def sqlite_export_ceiling(url: str, list_id: int) -> float:
    import sqlite3

    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+", newline="") as out:
        writer = csv.writer(out, delimiter=";", lineterminator="\n")
        cursor = conn.execute(
            "SELECT r.email, r.mobile, s.list_id, s.unsubscribed_at, s.unsubscribe_reason, "
            "s.unsubscribe_mailing_id, json_extract(r.fields, '$.\"1\"'), json_extract(r.fields, '$.\"2\"') "
            "FROM subscriptions s JOIN recipients r ON r.id = s.recipient_id "
            "WHERE s.list_id = ? AND s.status = 'unsubscribed' ORDER BY s.unsubscribed_at, s.id",
            (list_id,),
        )
        while batch := cursor.fetchmany(10_000):
            writer.writerows(batch)
    seconds = time.perf_counter() - start
    conn.close()
    return seconds


def bench_backend(
    name: str, url: str, path: Path, rows: int, repeat: int, batch_size: int, pg_dir: Path | None
) -> dict[str, Any]:
    from missiva import migrate

    migrate.upgrade(url)
    fresh, update, peaks, ceilings, exports, export_ceilings = [], [], [], [], [], []
    for i in range(repeat):
        account_id, list_id = new_account(url, f"{name}-{i}")
        first = timed_import(url, account_id, list_id, path, batch_size)
        assert first["new"] == rows, first
        second = timed_import(url, account_id, list_id, path, batch_size)
        assert second["unchanged"] == rows, second
        fresh.append(rows / first["seconds"])
        update.append(rows / second["seconds"])
        peaks.append(max(first["peak_mb"], second["peak_mb"]))
        ceiling_account, _ = new_account(url, f"{name}-ceiling-{i}")
        if pg_dir is not None:
            seconds = pg_import_ceiling(pg_dir, "bench", ceiling_account, path)
        else:
            seconds = sqlite_import_ceiling(url, ceiling_account, path)
        ceilings.append(rows / seconds)
        unsubscribe_all(url, list_id)
        seconds, exported = export_time(url, account_id, list_id)
        assert exported == rows, exported
        exports.append(rows / seconds)
        ceiling = (
            pg_export_ceiling(pg_dir, "bench", list_id) if pg_dir else sqlite_export_ceiling(url, list_id)
        )
        export_ceilings.append(rows / ceiling)
    out = {
        "import_new": statistics.median(fresh),
        "import_update": statistics.median(update),
        "import_ceiling": statistics.median(ceilings),
        "peak_rss_mb": max(peaks),
        "export": statistics.median(exports),
        "export_ceiling": statistics.median(export_ceilings),
    }
    import_ratio = out["import_new"] / out["import_ceiling"]
    export_ratio = out["export"] / out["export_ceiling"]
    print(
        f"{name:10} import new {out['import_new']:>9,.0f} rows/s"
        f" | update {out['import_update']:>9,.0f} rows/s"
        f" | ceiling {out['import_ceiling']:>9,.0f} rows/s | ratio {import_ratio:.2f}"
        f" | peak RSS {out['peak_rss_mb']:.0f} MB",
        flush=True,
    )
    print(
        f"{name:10} export     {out['export']:>9,.0f} rows/s | ceiling {out['export_ceiling']:>9,.0f} rows/s"
        f" | ratio {export_ratio:.2f}",
        flush=True,
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure; medians are reported")
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        url, account_id, list_id, path, batch_size = args.child
        child_import(url, int(account_id), int(list_id), path, int(batch_size))
        return

    from missiva.testing.postgres import PostgresServer

    with tempfile.TemporaryDirectory(prefix="missiva-bench-") as scratch:
        path = Path(scratch) / "subscribers.csv"
        generate(path, args.rows)
        print(
            f"{args.rows:,} rows, {path.stat().st_size / 1e6:.0f} MB, batches of {args.batch_size}",
            flush=True,
        )
        sqlite = bench_backend(
            "sqlite", f"sqlite:///{scratch}/bench.db", path, args.rows, args.repeat, args.batch_size, None
        )
        pg = PostgresServer().start(fsync=True)
        try:
            url = pg.create_database("bench")
            postgres = bench_backend("postgresql", url, path, args.rows, args.repeat, args.batch_size, pg.dir)
        finally:
            pg.stop()
    del sqlite
    ratio = postgres["import_new"] / postgres["import_ceiling"]
    print(
        f"bench import_export: {postgres['import_new']:.0f} rows/s; "
        f"ceiling {postgres['import_ceiling']:.0f} rows/s; ratio {ratio:.2f}"
    )


if __name__ == "__main__":
    main()
