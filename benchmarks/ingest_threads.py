"""Where a batched event's CPU goes: the server's threads under a batch load, from /proc.

    python benchmarks/ingest_threads.py                  # native batches of 500
    python benchmarks/ingest_threads.py --mode segment   # the same as Segment /v1/batch
    PYTHONPATH=/path/to/other/checkout/src python benchmarks/ingest_threads.py   # A/B

Starts `sextant serve` on a temporary data directory (as `ingest.py` does), warms it up, then
drives it with `wrk` for `--seconds` and prints each thread group's CPU per event:
`python` is every Python thread (the event loop, the writer, the store calls' thread pool:
they share the interpreter lock), `ThreadPool` the engine's insert, `MergeMutate` its
background merges. Normalising workers, when the server runs any (`--setting
ingest_workers=1`), appear as `child:`. Alternate two checkouts run by run: the Python
threads' figure moves less with the machine's load than the throughput does.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from ingest import bench_server, ensure_wrk, event, run_wrk, segment_message  # noqa: E402


def thread_cpu(pid: int) -> collections.Counter[str]:
    """CPU seconds by thread name of a process and its children (`child:` names)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: collections.Counter[str] = collections.Counter()

    def add(process: int, label: str) -> None:
        for task in Path(f"/proc/{process}/task").glob("*"):
            try:
                stat = (task / "stat").read_text()
            except FileNotFoundError:
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat.rsplit(")", 1)[1].split()
            out[f"{label}{name}"] += (int(fields[11]) + int(fields[12])) / tick

    add(pid, "")
    for task in Path(f"/proc/{pid}/task").glob("*"):
        for child in (task / "children").read_text().split():
            add(int(child), "child:")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["native", "segment"], default="native")
    parser.add_argument("--seconds", type=int, default=12)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument(
        "--setting", action="append", default=[], metavar="NAME=VALUE", help="(repeatable)"
    )
    args = parser.parse_args()

    wrk = ensure_wrk()
    work = Path(tempfile.mkdtemp(prefix="sextant-threads-"))
    stamp = dt.datetime.now(dt.UTC).isoformat()
    body = work / "batch.json"
    if args.mode == "segment":
        messages = [segment_message(i, stamp) for i in range(args.batch_size)]
        body.write_bytes(json.dumps({"batch": messages, "sentAt": stamp}).encode())
    else:
        events = [event(i, stamp) for i in range(args.batch_size)]
        body.write_bytes(json.dumps({"batch": events}).encode())
    server = bench_server(work, args.setting, {}, parser)
    with server:
        account = server.bootstrap()
        path = "/v1/batch" if args.mode == "segment" else "/api/v1/events"
        url = server.url + path
        run_wrk(wrk, url, body, account.write_key, connections=4, seconds=3, work=work)
        assert server.process is not None
        before = thread_cpu(server.process.pid)
        started = time.monotonic()
        result = run_wrk(
            wrk,
            url,
            body,
            account.write_key,
            connections=args.connections,
            seconds=args.seconds,
            work=work,
        )
        elapsed = time.monotonic() - started
        after = thread_cpu(server.process.pid)
    events_sent = max(1, result.requests * args.batch_size)
    code = os.environ.get("PYTHONPATH") or str(ROOT / "src")
    print(
        f"{args.mode} ({code}): {result.rps * args.batch_size:,.0f} events/s, "
        f"p50 {result.p50_ms:.0f} ms, non-2xx {result.non_2xx}"
    )
    used = {name: after[name] - before.get(name, 0.0) for name in after}
    for name, seconds in sorted(used.items(), key=lambda item: -item[1]):
        if seconds >= 0.01:
            print(
                f"  {name:28s} {seconds:6.2f} s  {seconds / events_sent * 1e6:6.2f} us an event"
                f"  {seconds / elapsed * 100:5.1f} % of a core"
            )
    total = sum(used.values())
    print(f"  total {total / events_sent * 1e6:.2f} us an event, {total / elapsed:.2f} cores")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
