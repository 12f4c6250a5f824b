"""Ingestion throughput through the full pipeline, next to a parse-only FastAPI endpoint.

    python benchmarks/ingest.py                 # or: make bench-ingest
    python benchmarks/ingest.py --duration 20 --single-connections 512

Starts `sextant serve` (uvicorn, one worker) on a temporary data directory (SQLite + chDB)
and `benchmarks/trivial_app.py` (FastAPI, parses the JSON and answers) side by side, then
drives both with `wrk` (Debian package; installed with apt-get when missing) in the same
run on the same machine:

1. single-event requests/s: Sextant vs the trivial endpoint (target ratio >= 0.75);
2. batches of 500 events: events/s through Sextant (target >= 200,000/s);
3. with `--segment`, the same batches as Segment `/v1/batch` bodies (camelCase, `sentAt`).

Every Sextant request is authenticated, validated, enriched (user agent, geo, IP hash, URL)
and acknowledged only after its group-commit flush; after the run the server is stopped and
the stored rows are counted to show that every acknowledged event is in the store.
Rounds alternate between the two servers and the best round of each is reported, because
the machine is usually shared and single rounds are noisy. The CPU time each server process
used per event (all its threads, from /proc; for Sextant that includes the chDB insert and
its background merges) is printed too: on a busy machine it moves far less than the
throughput does, so it is the figure to compare between runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from sextant.sdk.testing import SextantServer, free_port  # noqa: E402

UA = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)


def event(index: int, stamp: str) -> dict[str, Any]:
    """A typical browser page event (~700 bytes): page, referrer, UTM, user agent, IP."""
    return {
        "type": "track",
        "event": "add_to_cart",
        "anonymous_id": f"anon-{index % 5000}",
        "session_id": f"s-{index % 900}",
        "timestamp": stamp,
        "properties": {"sku": f"SKU-{index % 300}", "price": 19.99, "quantity": 1},
        "context": {
            "page": {
                "url": f"https://shop.example/products/{index % 300}?utm_source=newsletter"
                "&utm_medium=email&utm_campaign=autumn",
                "referrer": "https://www.google.com/",
                "title": "Product page",
            },
            "userAgent": UA,
            "ip": f"81.2.{index % 200}.{index % 250}",
            "locale": "en-GB",
            "screen": {"width": 1440, "height": 900},
            "library": {"name": "sextant-js", "version": "0.1.0"},
        },
    }


def segment_message(index: int, stamp: str) -> dict[str, Any]:
    """The same event as a Segment message, as segment-analytics-python sends it but without
    a `messageId`: like the native batches, every request's events are new (a fixed body
    with message ids would be retries, which the server drops before the insert)."""
    message = event(index, stamp)
    message["anonymousId"] = message.pop("anonymous_id")
    return message


def bench_server(
    work: Path,
    settings: list[str],
    overrides: dict[str, str],
    parser: argparse.ArgumentParser,
) -> SextantServer:
    """The server under test (not started): no rate limit, warnings only, the `overrides`
    and every `--setting NAME=VALUE`, and otherwise the settings' real defaults."""
    values = {"ingest_rate_limit": "100000000/second", "log_level": "WARNING", **overrides}
    for setting in settings:
        name, sep, value = setting.partition("=")
        if not sep:
            parser.error(f"--setting {setting!r}: expected NAME=VALUE")
        values[name.strip().lower()] = value
    server = SextantServer(work / "sextant", **values)
    if "ingest_flush_interval_ms" not in values:
        server.env.pop("SEXTANT_INGEST_FLUSH_INTERVAL_MS", None)  # the real default
    return server


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found: installing Debian's wrk package (apt-get install -y wrk)")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=False)
    subprocess.run(
        [*sudo, "apt-get", "install", "-y", "-qq", "wrk"],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    found = shutil.which("wrk")
    if not found:
        sys.exit("wrk is required: apt-get install wrk")
    return found


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    non_2xx: int
    errors: int
    p50_ms: float
    p99_ms: float


def _duration_ms(text: str) -> float:
    match = re.match(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        return float("nan")
    value, unit = float(match[1]), match[2]
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def run_wrk(
    wrk: str, url: str, body_path: Path, key: str, *, connections: int, seconds: int, work: Path
) -> WrkResult:
    script = work / f"post-{body_path.stem}.lua"
    script.write_text(
        textwrap.dedent(
            f"""
            wrk.method = "POST"
            wrk.headers["Content-Type"] = "application/json"
            wrk.headers["X-API-Key"] = "{key}"
            local f = io.open("{body_path}", "rb")
            wrk.body = f:read("*a")
            f:close()
            """
        )
    )
    out = subprocess.run(
        [
            wrk,
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    assert total, out
    seconds_taken = float(total[2]) * {"s": 1.0, "ms": 0.001, "m": 60.0}.get(total[3], 1.0)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    p50 = re.search(r"^\s*50%\s+([\d.]+(?:us|ms|s|m))", out, re.MULTILINE)
    p99 = re.search(r"^\s*99%\s+([\d.]+(?:us|ms|s|m))", out, re.MULTILINE)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert rps, out
    return WrkResult(
        requests=int(total[1]),
        seconds=seconds_taken,
        rps=float(rps[1]),
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        errors=sum(int(x) for x in socket_errors.groups()) if socket_errors else 0,
        p50_ms=_duration_ms(p50[1]) if p50 else float("nan"),
        p99_ms=_duration_ms(p99[1]) if p99 else float("nan"),
    )


def start_trivial(port: int, log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "trivial_app:app",
            "--app-dir",
            str(ROOT / "benchmarks"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.post(f"http://127.0.0.1:{port}/api/v1/events", content=b"{}", timeout=1.0)
            return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    sys.exit(f"trivial server did not start:\n{log.read_text()}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads) and of its running
    children (Sextant's normalising workers), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        total += sum(cpu_seconds(int(child)) for child in children)
    return total


def count_stored(events_url: str, project_id: str) -> tuple[int, int]:
    script = textwrap.dedent(
        """
        import sys
        from sextant.core.eventstore import open_event_store
        store = open_event_store(sys.argv[1])
        row = store.query(
            "SELECT count(), (SELECT count() FROM events FINAL WHERE project_id = {p:UUID}) "
            "FROM events WHERE project_id = {p:UUID}", {"p": sys.argv[2]}).rows[0]
        print(row[0], row[1])
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script, events_url, project_id],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return int(out[0]), int(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per server")
    # Group commit holds each request until its block is inserted (one insert at a time, at
    # most one per ingest_flush_min_spacing_ms), so single-event throughput needs many
    # requests in flight, as real traffic from many clients has; latency percentiles are
    # printed next to the throughput.
    parser.add_argument("--single-connections", type=int, default=1024)
    parser.add_argument("--batch-connections", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument(
        "--flush-interval-ms",
        type=int,
        default=None,
        help="SEXTANT_INGEST_FLUSH_INTERVAL_MS for the run (default: the setting's default)",
    )
    parser.add_argument(
        "--ingest-workers",
        type=int,
        default=None,
        help="SEXTANT_INGEST_WORKERS for the run (default: the setting's default, auto)",
    )
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other setting for the server, e.g. ingest_flush_max_events=50000 (repeatable)",
    )
    parser.add_argument(
        "--segment",
        action="store_true",
        help="also send the batches to Segment's /v1/batch (camelCase messages, sentAt)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()

    wrk = ensure_wrk()
    work = Path(tempfile.mkdtemp(prefix="sextant-bench-"))
    stamp = dt.datetime.now(dt.UTC).isoformat()
    single_body = work / "single.json"
    single_body.write_bytes(json.dumps(event(1, stamp)).encode())
    batch_body = work / "batch.json"
    batch_body.write_bytes(
        json.dumps({"batch": [event(i, stamp) for i in range(args.batch_size)]}).encode()
    )
    segment_body = work / "segment.json"
    segment_body.write_bytes(
        json.dumps(
            {"batch": [segment_message(i, stamp) for i in range(args.batch_size)], "sentAt": stamp}
        ).encode()
    )

    overrides: dict[str, str] = {}
    if args.flush_interval_ms is not None:
        overrides["ingest_flush_interval_ms"] = str(args.flush_interval_ms)
    if args.ingest_workers is not None:
        overrides["ingest_workers"] = str(args.ingest_workers)
    server = bench_server(work, args.setting, overrides, parser)
    trivial_port = free_port()
    trivial: subprocess.Popen[bytes] | None = None
    results: dict[str, Any] = {}
    try:
        server.start()
        account = server.bootstrap()
        trivial = start_trivial(trivial_port, work / "trivial.log")
        sextant_url = f"{server.url}/api/v1/events"
        trivial_url = f"http://127.0.0.1:{trivial_port}/api/v1/events"
        key = account.write_key
        load_before = os.getloadavg()
        print(
            f"cpus: {os.cpu_count()}  load average (1/5/15 min) before: "
            f"{' '.join(f'{x:.2f}' for x in load_before)}  data: {work}"
        )
        if load_before[0] > 0.5 * (os.cpu_count() or 1):
            print("  note: the machine is busy; figures are lower and noisier than on a quiet one")

        # Warm-up: caches (user agents, geo, key), first-call paths, and (on the first
        # batch) Sextant's normalising workers when it runs any.
        for url in (sextant_url, trivial_url):
            run_wrk(wrk, url, single_body, key, connections=32, seconds=2, work=work)
            run_wrk(wrk, url, batch_body, key, connections=4, seconds=2, work=work)

        assert server.process is not None
        pids = {"trivial": trivial.pid, "sextant": server.process.pid}
        cpu_us: dict[str, list[float]] = {
            "single trivial": [],
            "single sextant": [],
            "batch trivial": [],
            "batch sextant": [],
            "segment sextant": [],
        }
        acknowledged = 0
        single: dict[str, list[WrkResult]] = {"trivial": [], "sextant": []}
        for _ in range(args.rounds):
            for name, url in (("trivial", trivial_url), ("sextant", sextant_url)):
                cpu_before = cpu_seconds(pids[name])
                result = run_wrk(
                    wrk,
                    url,
                    single_body,
                    key,
                    connections=args.single_connections,
                    seconds=args.duration,
                    work=work,
                )
                single[name].append(result)
                cpu_us[f"single {name}"].append(
                    (cpu_seconds(pids[name]) - cpu_before) / max(1, result.requests) * 1e6
                )
                if name == "sextant":
                    acknowledged += result.requests - result.non_2xx
                print(
                    f"  single  {name:8s} {result.rps:10,.0f} req/s  p50 {result.p50_ms:7.1f} ms"
                    f"  p99 {result.p99_ms:7.1f} ms  non-2xx {result.non_2xx}  "
                    f"socket errors {result.errors}"
                )
        batches: list[WrkResult] = []
        trivial_batches: list[WrkResult] = []
        segment_batches: list[WrkResult] = []

        def batch_round(url: str, body: Path, name: str) -> WrkResult:
            """One batch round on Sextant: its result, with its CPU and acknowledgements."""
            nonlocal acknowledged
            cpu_before = cpu_seconds(pids["sextant"])
            result = run_wrk(
                wrk,
                url,
                body,
                key,
                connections=args.batch_connections,
                seconds=args.duration,
                work=work,
            )
            cpu_us[f"{name} sextant"].append(
                (cpu_seconds(pids["sextant"]) - cpu_before)
                / max(1, result.requests * args.batch_size)
                * 1e6
            )
            acknowledged += (result.requests - result.non_2xx) * args.batch_size
            return result

        for _ in range(args.rounds):
            cpu_before = cpu_seconds(pids["trivial"])
            trivial_batch = run_wrk(
                wrk,
                trivial_url,
                batch_body,
                key,
                connections=args.batch_connections,
                seconds=args.duration,
                work=work,
            )
            trivial_batches.append(trivial_batch)
            cpu_us["batch trivial"].append(
                (cpu_seconds(pids["trivial"]) - cpu_before)
                / max(1, trivial_batch.requests * args.batch_size)
                * 1e6
            )

            result = batch_round(sextant_url, batch_body, "batch")
            batches.append(result)
            print(
                f"  batch   sextant  {result.rps * args.batch_size:10,.0f} events/s "
                f"({result.rps:,.0f} req/s, p50 {result.p50_ms:.1f} ms)  "
                f"trivial parse-only {trivial_batch.rps * args.batch_size:,.0f} events/s  "
                f"non-2xx {result.non_2xx}"
            )
            if not args.segment:
                continue
            result = batch_round(f"{server.url}/v1/batch", segment_body, "segment")
            segment_batches.append(result)
            print(
                f"  segment sextant  {result.rps * args.batch_size:10,.0f} events/s "
                f"({result.rps:,.0f} req/s, p50 {result.p50_ms:.1f} ms)  non-2xx {result.non_2xx}"
            )
    finally:
        if trivial is not None:
            trivial.terminate()
            trivial.wait(timeout=30)
        server.stop()
    load_after = os.getloadavg()
    raw, final = count_stored(server.env["SEXTANT_EVENTS_URL"], account.project_id)
    warmup_note = "(plus warm-up requests)"

    best_trivial = max(r.rps for r in single["trivial"])
    best_sextant = max(r.rps for r in single["sextant"])
    best_batch = max(r.rps for r in batches) * args.batch_size
    best_trivial_batch = max(r.rps for r in trivial_batches) * args.batch_size
    ratio = best_sextant / best_trivial
    # Each round runs the two servers back to back: the ratio within a round is the fairest.
    round_ratios = [
        s.rps / t.rps for t, s in zip(single["trivial"], single["sextant"], strict=True)
    ]
    print()
    print(
        f"single-event requests/s   trivial {best_trivial:10,.0f}   sextant {best_sextant:10,.0f}"
    )
    verdict = "met" if ratio >= 0.75 else "NOT met"
    print(
        f"ratio sextant/trivial     {ratio:.2f}   (target >= 0.75: {verdict}; per round: "
        f"{', '.join(f'{r:.2f}' for r in round_ratios)})"
    )
    print(
        f"batched events/s          sextant {best_batch:10,.0f}   (target >= 200,000: "
        f"{'met' if best_batch >= 200_000 else 'NOT met'}; trivial parse-only "
        f"{best_trivial_batch:,.0f})"
    )
    cpu = {name: min(values) for name, values in cpu_us.items() if values}
    if segment_batches:
        best_segment = max(r.rps for r in segment_batches) * args.batch_size
        print(
            f"Segment /v1/batch events/s sextant {best_segment:9,.0f}   "
            f"({cpu['segment sextant']:.1f} us CPU an event)"
        )
    print(
        f"CPU per single request    sextant {cpu['single sextant']:6.1f} us   trivial "
        f"{cpu['single trivial']:6.1f} us   (server process, all threads; best round)"
    )
    print(
        f"CPU per batched event     sextant {cpu['batch sextant']:6.1f} us   trivial "
        f"{cpu['batch trivial']:6.1f} us   (chDB insert and merges included)"
    )
    print(
        f"load average              before {load_before[0]:.2f}, after {load_after[0]:.2f} "
        f"(1 min; {os.cpu_count()} cpus)"
    )
    print(
        f"stored events             {final:,} (FINAL), {raw:,} rows; acknowledged {acknowledged:,} "
        f"{warmup_note}: {'all stored' if final >= acknowledged else 'MISSING EVENTS'}"
    )
    results = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "duration_s": args.duration,
        "single_connections": args.single_connections,
        "batch_connections": args.batch_connections,
        "batch_size": args.batch_size,
        "flush_interval_ms": args.flush_interval_ms,
        "ingest_workers": args.ingest_workers,
        "trivial_rps": round(best_trivial),
        "sextant_rps": round(best_sextant),
        "ratio": round(ratio, 3),
        "round_ratios": [round(r, 3) for r in round_ratios],
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after],
        "batched_events_per_s": round(best_batch),
        "trivial_batched_events_per_s": round(best_trivial_batch),
        "cpu_us_per_single_request": {
            "sextant": round(cpu["single sextant"], 1),
            "trivial": round(cpu["single trivial"], 1),
        },
        "cpu_us_per_batched_event": {
            "sextant": round(cpu["batch sextant"], 2),
            "trivial": round(cpu["batch trivial"], 2),
        },
        "segment_batched_events_per_s": (
            round(max(r.rps for r in segment_batches) * args.batch_size)
            if segment_batches
            else None
        ),
        "acknowledged": acknowledged,
        "stored_final": final,
    }
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
