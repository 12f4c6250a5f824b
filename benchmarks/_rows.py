"""Vectorised synthetic events (demo-shaped) as tab-separated bytes for chDB and PostgreSQL.

One TSV payload per chunk is inserted into both stores, so both hold exactly the same rows.
Users arrive over 90 days and stay active with a long tail; events mix web (page views,
sign-ups, purchases), API requests and Web3 transactions, with 2 % bot traffic.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

COLUMNS = [
    "project_id",
    "event_id",
    "message_id",
    "type",
    "event",
    "timestamp",
    "received_at",
    "distinct_id",
    "session_id",
    "path",
    "referrer_domain",
    "utm_source",
    "browser",
    "os",
    "device_type",
    "country",
    "is_bot",
    "http_method",
    "http_route",
    "http_status",
    "duration_ms",
    "chain_id",
    "wallet_address",
    "contract_address",
    "tx_hash",
    "tx_value",
    "token_symbol",
    "tx_status",
    "properties",
]

PG_TABLE = """
CREATE TABLE events (
    project_id uuid NOT NULL, event_id uuid NOT NULL, message_id text NOT NULL,
    type text NOT NULL, event text NOT NULL, timestamp timestamptz NOT NULL,
    received_at timestamptz NOT NULL, distinct_id text NOT NULL, session_id text NOT NULL,
    path text NOT NULL, referrer_domain text NOT NULL, utm_source text NOT NULL,
    browser text NOT NULL, os text NOT NULL, device_type text NOT NULL, country text NOT NULL,
    is_bot boolean NOT NULL, http_method text NOT NULL, http_route text NOT NULL,
    http_status integer NOT NULL, duration_ms double precision NOT NULL, chain_id bigint NOT NULL,
    wallet_address text NOT NULL, contract_address text NOT NULL, tx_hash text NOT NULL,
    tx_value numeric(78, 0) NOT NULL, token_symbol text NOT NULL, tx_status text NOT NULL,
    properties jsonb NOT NULL
);
SET TIME ZONE 'UTC';
"""

DAYS = 90
EVENTS = np.array(
    [
        "$pageview",
        "signup",
        "add_to_cart",
        "purchase",
        "$api_request",
        "tx_confirmed",
        "wallet_connected",
        "$identify",
        "button_clicked",
    ]
)
TYPES = np.array(["page", "track", "track", "track", "api", "web3", "web3", "identify", "track"])
WEIGHTS = np.array([0.55, 0.05, 0.08, 0.04, 0.12, 0.04, 0.02, 0.01, 0.09])
PATHS = np.array(
    ["/", "/pricing", "/docs", "/blog", "/signup", "/login", "/features", "/about", "/docs/api"]
    + [f"/blog/post-{i}" for i in range(40)]
)
REFERRERS = np.array(["", "", "google.com", "twitter.com", "news.ycombinator.com", "github.com"])
UTM = np.array(["", "", "", "google", "newsletter", "twitter"])
BROWSERS = np.array(["Chrome", "Chrome", "Safari", "Firefox", "Edge", "Samsung Internet"])
OSES = np.array(["Windows", "macOS", "iOS", "Android", "Linux"])
DEVICES = np.array(["desktop", "desktop", "mobile", "tablet"])
COUNTRIES = np.array(["US", "US", "DE", "JP", "FR", "GB", "IN", "BR", "CA", "NL"])
METHODS = np.array(["GET", "GET", "GET", "POST", "DELETE"])
ROUTES = np.array(["/v1/items", "/v1/items/{id}", "/v1/orders", "/v1/login", "/v1/search"])
STATUSES = np.array([200] * 14 + [201, 204, 400, 404, 429, 500])
CHAINS = np.array([1, 137, 8453, 10])
TOKENS = np.array(["ETH", "USDC", "MATIC", "OP"])
PLANS = np.array(['{"plan":"free"}', '{"plan":"pro"}', '{"plan":"team"}', "{}"])


@dataclass
class Chunk:
    events: bytes
    aliases: bytes


def _hex(values: np.ndarray, width: int) -> np.ndarray:
    return np.array([format(int(v), f"0{width}x") for v in values])


def tsv_chunks(
    n: int, *, end: datetime, project_id: str, chunk: int = 500_000, seed: int = 7
) -> Iterator[Chunk]:
    rng = np.random.default_rng(seed)
    users = max(1_000, n // 50)
    span_ms = DAYS * 86_400_000
    start = end - timedelta(days=DAYS)
    # When each user first shows up; activity is spread from then to the end.
    arrival = (rng.random(users) ** 1.5 * span_ms * 0.95).astype(np.int64)
    base = np.datetime64(start.replace(tzinfo=None), "ms")
    aliases_done = False
    done = 0
    while done < n:
        c = min(chunk, n - done)
        uid = (rng.pareto(1.2, c) * users / 20).astype(np.int64) % users
        offset = arrival[uid] + (rng.random(c) * (span_ms - arrival[uid])).astype(np.int64)
        kind = rng.choice(len(EVENTS), size=c, p=WEIGHTS)
        ev, ty = EVENTS[kind], TYPES[kind]
        moments = base + offset.astype("timedelta64[ms]")
        ts = np.char.replace(moments.astype(str), "T", " ")
        rec = np.char.replace((moments + np.timedelta64(40, "ms")).astype(str), "T", " ")
        api = ty == "api"
        web3 = ty == "web3"
        tx = ev == "tx_confirmed"
        pick = lambda arr: arr[rng.integers(0, len(arr), c)]  # noqa: E731
        ids = rng.integers(0, 2**63, size=(c, 2), dtype=np.int64)
        event_ids = [
            f"{a:016x}{b:016x}" for a, b in zip(ids[:, 0].tolist(), ids[:, 1].tolist(), strict=True)
        ]
        event_ids = [f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}" for h in event_ids]
        uid_s = uid.astype(str)
        day = (offset // 86_400_000).astype(str)
        cols = {
            "project_id": np.full(c, project_id),
            "event_id": np.array(event_ids),
            "message_id": (np.arange(done, done + c)).astype(str),
            "type": ty,
            "event": ev,
            "timestamp": ts,
            "received_at": rec,
            "distinct_id": np.char.add("u", uid_s),
            "session_id": np.char.add(np.char.add(uid_s, "-"), day),
            "path": np.where(ev == "$pageview", pick(PATHS), ""),
            "referrer_domain": np.where(ev == "$pageview", pick(REFERRERS), ""),
            "utm_source": np.where(ev == "$pageview", pick(UTM), ""),
            "browser": pick(BROWSERS),
            "os": pick(OSES),
            "device_type": pick(DEVICES),
            "country": pick(COUNTRIES),
            "is_bot": (rng.random(c) < 0.02).astype(np.int8).astype(str),
            "http_method": np.where(api, pick(METHODS), ""),
            "http_route": np.where(api, pick(ROUTES), ""),
            "http_status": np.where(api, pick(STATUSES), 0).astype(str),
            "duration_ms": np.where(api, np.round(rng.lognormal(3.0, 0.8, c), 3), 0).astype(str),
            "chain_id": np.where(web3, pick(CHAINS), 0).astype(str),
            "wallet_address": np.where(web3, np.char.add("0x", _hex(uid, 40)), ""),
            "contract_address": np.where(
                tx, np.char.add("0xc0ffee", _hex(rng.integers(0, 30, c), 34)), ""
            ),
            "tx_hash": np.where(tx, np.char.add("0x", _hex(ids[:, 0] & 0x7FFFFFFFFFFF, 64)), ""),
            # wei amounts: up to ~10^4 tokens, exact beyond float range once summed
            "tx_value": np.where(
                tx,
                np.char.add(rng.integers(1, 10**13, c).astype(str), "000000000"),
                "0",
            ),
            "token_symbol": np.where(tx, pick(TOKENS), ""),
            "tx_status": np.where(tx, np.where(rng.random(c) < 0.93, "success", "failed"), ""),
            "properties": pick(PLANS),
        }
        rows = zip(*(cols[name].tolist() for name in COLUMNS), strict=True)
        events = ("\n".join("\t".join(row) for row in rows) + "\n").encode()
        aliases = b""
        if not aliases_done:
            # Every 10th user identified as the same person as its neighbour.
            merged = np.arange(0, users, 10)
            when = str(end.replace(tzinfo=None))
            aliases = "".join(
                f"{project_id}\tu{u}\tu{u + 1}\t{when}\n" for u in merged.tolist()
            ).encode()
            aliases_done = True
        done += c
        yield Chunk(events, aliases)
