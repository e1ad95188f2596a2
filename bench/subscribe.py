"""Benchmark: real-time subscribes per second over HTTP, on SQLite and PostgreSQL.

Starts `missiva serve` (1 HTTP process on SQLite, 2 on PostgreSQL) and drives it with wrk from
Debian: the MailUp `xmlSubscribe` call and the native `POST /api/v1/lists/{id}/subscribe`, every
request a new address.
The ceiling is the same server's trivial route (`/healthz`, one `SELECT 1`) measured in the same run.

    python bench/subscribe.py [--backend sqlite|postgresql|both] [--duration 10] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from missiva.testing.postgres import PostgresServer

LUA_XML = """
local n = 0
local tid = 0
local counter = 1
function setup(thread) thread:set("tid", counter); counter = counter + 1 end
function request()
  n = n + 1
  local email = "x" .. tid .. "n" .. n .. "%(run)s@example.com"
  return wrk.format("GET", "/frontend/xmlSubscribe.aspx?List=%(list)s&Confirm=0&Email=" .. email)
end
"""

LUA_NATIVE = """
local n = 0
local counter = 1
function setup(thread) thread:set("tid", counter); counter = counter + 1 end
function request()
  n = n + 1
  local body = '{"email":"a' .. tid .. 'n' .. n .. '%(run)s@example.com",'
    .. '"fields":{"nome":"Bench"},"double_opt_in":false}'
  local headers = {["Authorization"]="Bearer %(key)s", ["Content-Type"]="application/json"}
  return wrk.format("POST", "/api/v1/lists/%(list)s/subscribe", headers, body)
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wrk(url: str, script: str | None, duration: int, connections: int) -> dict[str, float]:
    """Run wrk and return requests/s, p50 and p99 latency (ms) and non-2xx count."""
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", url]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        if script:
            fh.write(script)
            cmd[1:1] = ["-s", fh.name]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    os.unlink(fh.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)

    def pct(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {"rps": rps, "p50": pct("50"), "p99": pct("99"), "errors": int(non2xx.group(1)) if non2xx else 0}


def start_server(database_url: str, data_dir: Path, port: int, workers: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "MISSIVA_DATABASE_URL": database_url,
        "MISSIVA_DATA_DIR": str(data_dir),
        "MISSIVA_INBOUND_PORT": "off",
    }
    env.pop("MISSIVA_HUEY_IMMEDIATE", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "missiva",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-worker",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def setup_account(database_url: str, data_dir: Path) -> tuple[str, int]:
    env = {**os.environ, "MISSIVA_DATABASE_URL": database_url, "MISSIVA_DATA_DIR": str(data_dir)}
    subprocess.run([sys.executable, "-m", "missiva", "migrate"], env=env, check=True, capture_output=True)
    acct = json.loads(
        subprocess.run(
            [sys.executable, "-m", "missiva", "account", "create", "Bench", "--json"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    lst = json.loads(
        subprocess.run(
            [sys.executable, "-m", "missiva", "lists", "create", "Bench", "--opt-in", "single", "--json"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    return acct["api_key"], lst["id"]


def bench_backend(name: str, database_url: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    data_dir = Path(tempfile.mkdtemp(prefix=f"missiva-bench-{name}-"))
    port = free_port()
    key, list_id = setup_account(database_url, data_dir)
    # SQLite has one writer: one process (its recommended setup); PostgreSQL: one process per core.
    workers = 1 if name == "sqlite" else 2
    proc = start_server(database_url, data_dir, port, workers)
    base = f"http://127.0.0.1:{port}"
    results: dict[str, list[dict[str, float]]] = {"healthz": [], "xmlSubscribe": [], "native": []}
    try:
        wrk(f"{base}/healthz", None, 2, args.connections)  # warm up
        for _ in range(args.runs):
            run = uuid.uuid4().hex[:8]
            results["healthz"].append(wrk(f"{base}/healthz", None, args.duration, args.connections))
            results["xmlSubscribe"].append(
                wrk(base, LUA_XML % {"list": list_id, "run": run}, args.duration, args.connections)
            )
            results["native"].append(
                wrk(
                    base,
                    LUA_NATIVE % {"list": list_id, "run": run, "key": key},
                    args.duration,
                    args.connections,
                )
            )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    medians = {
        route: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for route, runs in results.items()
    }
    for route, m in medians.items():
        print(
            f"{name:10} {route:13} {m['rps']:8.0f} req/s  p50 {m['p50']:6.1f} ms  p99 {m['p99']:6.1f} ms"
            f"  non-2xx {m['errors']:.0f}"
        )
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    print(
        f"wrk -t2 -c{args.connections} -d{args.duration}s, median of {args.runs} runs, "
        f"uvicorn workers: 1 on SQLite, 2 on PostgreSQL; {os.cpu_count()} cores"
    )
    headline: dict[str, dict[str, float]] | None = None
    if args.backend in ("sqlite", "both"):
        headline = bench_backend("sqlite", f"sqlite:///{tempfile.mkdtemp()}/bench.db", args)
    if args.backend in ("postgresql", "both"):
        pg = PostgresServer().start(fsync=True)
        try:
            headline = bench_backend("postgresql", pg.create_database("bench"), args)
        finally:
            pg.stop()
    assert headline is not None
    figure, ceiling = headline["native"]["rps"], headline["healthz"]["rps"]
    ratio = figure / ceiling
    print(f"bench subscribe: {figure:.0f} subscribes/s; ceiling {ceiling:.0f} req/s; ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
