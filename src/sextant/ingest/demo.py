"""Realistic demo data, generated straight into event-store rows.

`generate_rows(project_id, n_events, seed=..., days=...)` simulates visitors over `days`
days: sessions with referrers, UTM campaigns, devices and countries; a sign-up ->
activation -> checkout -> purchase funnel with drop-off; retention that decays; API
traffic with per-route latency and some 5xx; Web3 wallet connections and transactions on
several chains. It is deterministic for a seed and yields `DemoBatch`es (rows in
`EVENT_COLUMNS` / `ALIAS_COLUMNS` order) so any store can load the same data.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import math
import random
import secrets
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson

from sextant.config import Settings
from sextant.core.db import Database
from sextant.core.eventstore import EventStore
from sextant.ingest.enrich import checksum_address
from sextant.ingest.event import ALIAS_COLUMNS, EVENT_COLUMNS

COL = {name: index for index, name in enumerate(EVENT_COLUMNS)}
_N = len(EVENT_COLUMNS)

# Values of an unused column, as ClickHouse stores its default.
_DEFAULTS: dict[str, Any] = {
    "is_bot": 0,
    "screen_width": 0,
    "screen_height": 0,
    "http_status": 0,
    "duration_ms": 0.0,
    "request_bytes": 0,
    "response_bytes": 0,
    "chain_id": 0,
    "tx_value": 0,
}


# Columns an API request event does not have (it comes from a server, not a browser).
_CLIENT_COLUMNS = (
    "session_id",
    "url",
    "title",
    "referrer",
    "referrer_domain",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "click_id",
    "browser",
    "browser_version",
    "os",
    "os_version",
    "device_type",
    "locale",
    "screen_width",
    "screen_height",
)


@dataclass(slots=True)
class DemoBatch:
    """`events`: rows in `EVENT_COLUMNS` order; `aliases`: rows in `ALIAS_COLUMNS` order.

    Types: UUID columns are strings, timestamps are timezone-aware UTC datetimes,
    `tx_value` is an int (up to 2**256 - 1), `properties` is a JSON string.
    """

    events: list[list[Any]] = field(default_factory=list)
    aliases: list[list[Any]] = field(default_factory=list)


class _Weighted:
    """Fast weighted choice over a fixed list."""

    def __init__(self, items: Sequence[tuple[Any, float]]) -> None:
        self.values = [value for value, _ in items]
        self.cumulative = list(itertools.accumulate(weight for _, weight in items))
        self.total = self.cumulative[-1]

    def pick(self, rng: random.Random) -> Any:
        return self.values[bisect.bisect(self.cumulative, rng.random() * self.total)]


# country, weight, locale, [(region, city), ...]
_COUNTRIES = _Weighted(
    [
        (
            (
                "US",
                "en-US",
                [
                    ("California", "San Francisco"),
                    ("New York", "New York"),
                    ("Texas", "Austin"),
                    ("Washington", "Seattle"),
                ],
            ),
            27,
        ),
        (
            ("DE", "de-DE", [("Berlin", "Berlin"), ("Bavaria", "Munich"), ("Hamburg", "Hamburg")]),
            13,
        ),
        (
            (
                "GB",
                "en-GB",
                [("England", "London"), ("England", "Manchester"), ("Scotland", "Edinburgh")],
            ),
            9,
        ),
        (("FR", "fr-FR", [("Île-de-France", "Paris"), ("Auvergne-Rhône-Alpes", "Lyon")]), 6),
        (("IN", "en-IN", [("Karnataka", "Bengaluru"), ("Maharashtra", "Mumbai")]), 8),
        (("BR", "pt-BR", [("São Paulo", "São Paulo"), ("Rio de Janeiro", "Rio de Janeiro")]), 5),
        (("CA", "en-CA", [("Ontario", "Toronto"), ("British Columbia", "Vancouver")]), 4),
        (("NL", "nl-NL", [("North Holland", "Amsterdam")]), 3),
        (("ES", "es-ES", [("Madrid", "Madrid"), ("Catalonia", "Barcelona")]), 3),
        (("IT", "it-IT", [("Lombardy", "Milan"), ("Lazio", "Rome")]), 3),
        (("JP", "ja-JP", [("Tokyo", "Tokyo"), ("Osaka", "Osaka")]), 3),
        (("AU", "en-AU", [("New South Wales", "Sydney"), ("Victoria", "Melbourne")]), 2),
        (("PL", "pl-PL", [("Masovia", "Warsaw")]), 2),
        (("SE", "sv-SE", [("Stockholm", "Stockholm")]), 2),
        (("CH", "de-CH", [("Zurich", "Zurich")]), 2),
        (("AT", "de-AT", [("Vienna", "Vienna")]), 2),
        (("SG", "en-SG", [("Singapore", "Singapore")]), 2),
        (("MX", "es-MX", [("Mexico City", "Mexico City")]), 2),
        (("NG", "en-NG", [("Lagos", "Lagos")]), 1),
        (("KR", "ko-KR", [("Seoul", "Seoul")]), 1),
    ]
)

# device_type, browser, browser_version, os, os_version, screen, weight, user agent
_DEVICES = _Weighted(
    [
        (("desktop", "Chrome", "131.0", "Windows", "10", (1920, 1080)), 24),
        (("desktop", "Chrome", "131.0", "Mac OS X", "10.15", (1440, 900)), 12),
        (("desktop", "Safari", "18.1", "Mac OS X", "10.15", (1512, 982)), 6),
        (("desktop", "Firefox", "133.0", "Windows", "10", (1920, 1080)), 5),
        (("desktop", "Edge", "131.0", "Windows", "10", (1366, 768)), 5),
        (("desktop", "Chrome", "131.0", "Linux", "", (2560, 1440)), 3),
        (("mobile", "Mobile Safari", "18.1", "iOS", "18.1", (393, 852)), 18),
        (("mobile", "Chrome Mobile", "131.0", "Android", "14", (412, 915)), 15),
        (("mobile", "Samsung Internet", "26.0", "Android", "14", (384, 832)), 4),
        (("tablet", "Mobile Safari", "18.1", "iOS", "18.1", (820, 1180)), 4),
        (("tablet", "Chrome", "131.0", "Android", "13", (800, 1280)), 1),
        (("bot", "Googlebot", "2.1", "Other", "", (0, 0)), 1.5),
        (("bot", "HeadlessChrome", "131.0", "Linux", "", (1280, 720)), 0.5),
    ]
)

_HOST = "www.acme-demo.com"
_APP_HOST = "app.acme-demo.com"

# channel name, weight, referrer, utm (source, medium, campaign), click id name, signup boost
_CHANNELS = _Weighted(
    [
        (("direct", "", None, "", 1.0), 28),
        (("google", "https://www.google.com/", None, "", 1.0), 24),
        (
            (
                "google_ads",
                "https://www.google.com/",
                ("google", "cpc", "spring_sale"),
                "gclid",
                1.6,
            ),
            5,
        ),
        (("google_brand", "https://www.google.com/", ("google", "cpc", "brand"), "gclid", 2.2), 3),
        (("bing", "https://www.bing.com/", None, "", 1.0), 4),
        (("bing_ads", "https://www.bing.com/", ("bing", "cpc", "spring_sale"), "msclkid", 1.3), 1),
        (("newsletter", "", ("newsletter", "email", "weekly_digest"), "", 1.8), 5),
        (("launch", "", ("newsletter", "email", "product_launch"), "", 2.0), 2),
        (("twitter", "https://t.co/", ("twitter", "social", "launch_thread"), "", 0.8), 5),
        (
            (
                "facebook",
                "https://www.facebook.com/",
                ("facebook", "paid_social", "retargeting"),
                "fbclid",
                0.9,
            ),
            4,
        ),
        (("linkedin", "https://www.linkedin.com/", None, "", 1.2), 3),
        (("reddit", "https://www.reddit.com/", None, "", 0.7), 3),
        (("hackernews", "https://news.ycombinator.com/", None, "", 1.1), 4),
        (
            (
                "producthunt",
                "https://www.producthunt.com/",
                ("producthunt", "referral", "launch_day"),
                "",
                1.4,
            ),
            2,
        ),
        (("github", "https://github.com/", None, "", 1.3), 3),
        (
            (
                "partner",
                "https://partner-blog.example.org/",
                ("partner_blog", "referral", "integration_guide"),
                "",
                1.5,
            ),
            2,
        ),
    ]
)

_LANDING = _Weighted(
    [
        ("/", 40),
        ("/pricing", 12),
        ("/features", 10),
        ("/blog/event-analytics-101", 8),
        ("/blog/funnels-that-work", 6),
        ("/docs/quickstart", 8),
        ("/integrations/segment", 4),
        ("/web3", 5),
        ("/changelog", 3),
        ("/about", 2),
        ("/signup", 2),
    ]
)
_BROWSE = _Weighted(
    [
        ("/pricing", 18),
        ("/features", 16),
        ("/docs/quickstart", 10),
        ("/docs/api", 8),
        ("/blog/event-analytics-101", 5),
        ("/blog/funnels-that-work", 4),
        ("/customers", 6),
        ("/integrations/segment", 4),
        ("/web3", 4),
        ("/security", 3),
        ("/", 12),
        ("/contact", 2),
    ]
)
_APP_PAGES = _Weighted(
    [
        ("/dashboard", 30),
        ("/reports/trends", 14),
        ("/reports/funnels", 10),
        ("/reports/retention", 8),
        ("/events/live", 8),
        ("/settings/keys", 5),
        ("/settings/members", 4),
        ("/projects/new", 3),
        ("/billing", 3),
    ]
)
_TITLES = {
    "/": "Acme — product analytics",
    "/pricing": "Pricing — Acme",
    "/features": "Features — Acme",
    "/signup": "Create your account — Acme",
    "/checkout": "Checkout — Acme",
}

# route, method, median ms, sigma, weight, request bytes, response bytes
_ROUTES = _Weighted(
    [
        (("/v1/events", "POST", 18.0, 0.45, 1500, 800), 30),
        (("/v1/events/batch", "POST", 42.0, 0.5, 24000, 300), 10),
        (("/v1/reports/{report_id}", "GET", 120.0, 0.7, 0, 9000), 14),
        (("/v1/reports", "POST", 260.0, 0.8, 1200, 12000), 6),
        (("/v1/projects/{project_id}", "GET", 25.0, 0.4, 0, 1500), 12),
        (("/v1/projects", "GET", 35.0, 0.5, 0, 4000), 8),
        (("/v1/users/{user_id}", "PATCH", 55.0, 0.5, 600, 900), 4),
        (("/v1/exports", "POST", 900.0, 0.9, 400, 250), 2),
        (("/v1/auth/token", "POST", 80.0, 0.3, 300, 700), 8),
        (("/v1/search", "GET", 150.0, 0.9, 0, 6000), 6),
    ]
)
_STATUS = _Weighted(
    [
        (200, 900),
        (201, 30),
        (204, 10),
        (400, 18),
        (401, 9),
        (403, 4),
        (404, 12),
        (409, 3),
        (422, 6),
        (429, 4),
        (500, 3),
        (502, 1),
        (503, 1.5),
        (504, 0.5),
    ]
)

# chain id, weight, native token, decimals-scaled typical value (in whole tokens)
_CHAINS = _Weighted(
    [
        ((1, "ETH", 0.35), 45),
        ((137, "MATIC", 120.0), 15),
        ((8453, "ETH", 0.08), 18),
        ((42161, "ETH", 0.12), 12),
        ((10, "ETH", 0.1), 6),
        ((56, "BNB", 0.6), 4),
    ]
)
_CONTRACTS = [
    "0x" + format(0xA0B86991C6218B36C1D19D4A2E9EB0CE3606EB48 + i * 7919, "040x") for i in range(8)
]

_PLANS = _Weighted([(("starter", 29), 50), (("team", 99), 35), (("business", 299), 15)])


def _hex(rng: random.Random, bits: int) -> str:
    return format(rng.getrandbits(bits), f"0{bits // 4}x")


class _Emitter:
    """Builds rows from a per-session template and hands out batches."""

    def __init__(
        self, project_id: str, limit: int, batch_size: int, rng: random.Random, end_ms: int
    ) -> None:
        self.project_id = project_id
        self.limit = limit
        # A session that starts shortly before the end would run past it: its later events
        # are left out, so the data set never holds events after `end` (in the future, when
        # `end` is now).
        self.end_ms = end_ms
        self.batch_size = batch_size
        self.rng = rng
        self.count = 0
        self.batch = DemoBatch()
        self.ready: list[DemoBatch] = []
        self.template: list[Any] = []

    @property
    def full(self) -> bool:
        return self.count >= self.limit

    def base(self) -> list[Any]:
        row: list[Any] = [""] * _N
        for name, value in _DEFAULTS.items():
            row[COL[name]] = value
        row[COL["project_id"]] = self.project_id
        row[COL["properties"]] = "{}"
        return row

    def emit(
        self,
        kind: str,
        name: str,
        ts_ms: int,
        updates: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
        template: list[Any] | None = None,
    ) -> None:
        if self.count >= self.limit or ts_ms >= self.end_ms:
            return
        rng = self.rng
        row = (template or self.template).copy()
        message_id = _hex(rng, 128)
        row[0] = self.project_id
        row[1] = (
            f"{message_id[:8]}-{message_id[8:12]}-{message_id[12:16]}-{message_id[16:20]}-{message_id[20:]}"
        )
        row[2] = message_id
        row[3] = kind
        row[4] = name
        moment = dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC)
        row[5] = moment
        row[6] = moment + dt.timedelta(milliseconds=40 + (ts_ms % 400))
        if updates:
            for key, value in updates.items():
                row[COL[key]] = value
        if properties:
            row[COL["properties"]] = orjson.dumps(properties).decode()
        self.batch.events.append(row)
        self.count += 1
        if len(self.batch.events) >= self.batch_size:
            self.ready.append(self.batch)
            self.batch = DemoBatch()

    def alias(self, distinct_id: str, person_id: str, ts_ms: int) -> None:
        if ts_ms >= self.end_ms:
            return
        self.batch.aliases.append(
            [
                self.project_id,
                distinct_id,
                person_id,
                dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC),
            ]
        )


def generate_rows(
    project_id: str,
    n_events: int,
    seed: int = 42,
    days: int = 90,
    *,
    end: dt.datetime | None = None,
    batch_size: int = 50_000,
) -> Iterator[DemoBatch]:
    """Yield about `n_events` realistic events (exactly `n_events`) over the last `days` days."""
    rng = random.Random(seed)
    end = end or dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    end_ms = int(end.timestamp() * 1000)
    start_ms = end_ms - days * 86_400_000
    out = _Emitter(project_id, n_events, batch_size, rng, end_ms)
    # Traffic grows over the period and dips at weekends.
    day_weights = []
    for day in range(days):
        weekday = (end - dt.timedelta(days=days - day)).weekday()
        day_weights.append((1.0 + 0.8 * day / max(1, days - 1)) * (0.65 if weekday >= 5 else 1.0))
    day_pick = _Weighted(list(enumerate(day_weights)))
    hour_pick = _Weighted(
        [
            (h, 0.25 + math.exp(-((h - 14) ** 2) / 18) + 0.6 * math.exp(-((h - 20) ** 2) / 8))
            for h in range(24)
        ]
    )
    incident_day = rng.randrange(days // 2, days) if days > 2 else 0
    visitor = 0
    users = 0
    while not out.full:
        visitor += 1
        if _simulate_visitor(
            out, rng, visitor, start_ms, end_ms, day_pick, hour_pick, incident_day, users
        ):
            users += 1
        while out.ready:
            yield out.ready.pop(0)
    while out.ready:
        yield out.ready.pop(0)
    if out.batch.events or out.batch.aliases:
        yield out.batch


def _simulate_visitor(
    out: _Emitter,
    rng: random.Random,
    visitor: int,
    start_ms: int,
    end_ms: int,
    day_pick: _Weighted,
    hour_pick: _Weighted,
    incident_day: int,
    users: int,
) -> bool:
    """Simulate one visitor's sessions; True when the visitor signed up."""
    anonymous_id = f"anon_{visitor:08d}_{_hex(rng, 32)}"
    country, locale, places = _COUNTRIES.pick(rng)
    region, city = places[rng.randrange(len(places))]
    device_type, browser, browser_version, os_name, os_version, screen = _DEVICES.pick(rng)
    is_bot = device_type == "bot"
    channel, referrer, utm, click_name, boost = _CHANNELS.pick(rng)
    web3_user = rng.random() < 0.16
    template = out.base()
    template[COL["anonymous_id"]] = anonymous_id
    template[COL["distinct_id"]] = anonymous_id
    template[COL["browser"]] = browser
    template[COL["browser_version"]] = browser_version
    template[COL["os"]] = os_name
    template[COL["os_version"]] = os_version
    template[COL["device_type"]] = device_type
    template[COL["is_bot"]] = 1 if is_bot else 0
    template[COL["locale"]] = locale
    template[COL["screen_width"]], template[COL["screen_height"]] = screen
    template[COL["country"]] = country
    template[COL["region"]] = region
    template[COL["city"]] = city
    template[COL["ip_hash"]] = _hex(rng, 128)
    template[COL["library"]] = "sextant-js"
    template[COL["library_version"]] = "0.1.0"

    day = day_pick.pick(rng)
    session_start = start_ms + day * 86_400_000 + hour_pick.pick(rng) * 3_600_000
    session_start += rng.randrange(3_600_000)
    user_id = ""
    signed_up = activated = purchased = False
    wallet = ""
    chain: tuple[int, str, float] | None = None
    churn = 0.55
    session_index = 0
    while session_start < end_ms and not out.full:
        session_index += 1
        template[COL["session_id"]] = f"s_{_hex(rng, 64)}"
        out.template = template
        ts = session_start
        first = session_index == 1
        landing_ref = (
            referrer if first else ("" if rng.random() < 0.7 else "https://www.google.com/")
        )
        path = _LANDING.pick(rng) if first else ("/" if rng.random() < 0.5 else _BROWSE.pick(rng))
        query = ""
        page_fields: dict[str, Any] = {}
        if first and utm is not None:
            source, medium, campaign = utm
            query = f"?utm_source={source}&utm_medium={medium}&utm_campaign={campaign}"
            page_fields.update(utm_source=source, utm_medium=medium, utm_campaign=campaign)
            if click_name:
                click = f"{click_name}={_hex(rng, 64)}"
                query += "&" + click
                page_fields["click_id"] = click
        pages = 1 if is_bot and rng.random() < 0.6 else 1 + min(14, int(rng.expovariate(0.45)))
        in_app = signed_up
        for page_number in range(pages):
            host = _APP_HOST if in_app else _HOST
            if page_number > 0:
                path = _APP_PAGES.pick(rng) if in_app else _BROWSE.pick(rng)
                query = ""
            fields = {
                "url": f"https://{host}{path}{query}",
                "host": host,
                "path": path,
                "title": _TITLES.get(path, path.strip("/").replace("-", " ").title() + " — Acme"),
            }
            if page_number == 0:
                fields.update(page_fields)
                if landing_ref:
                    fields["referrer"] = landing_ref
                    fields["referrer_domain"] = landing_ref.split("/")[2].removeprefix("www.")
            else:
                fields["referrer"] = f"https://{host}/"
                fields["referrer_domain"] = host
            out.emit("page", "$pageview", ts, fields)
            ts += int(rng.lognormvariate(3.2, 0.9) * 1000)
        if is_bot:
            session_start += int(rng.expovariate(1 / 3) * 86_400_000) + 3_600_000
            if rng.random() < 0.5:
                return False
            continue

        # Funnel: sign up -> activate (first project) -> checkout -> purchase.
        if not signed_up and rng.random() < (0.09 if first else 0.05) * boost:
            signed_up = True
            user_id = f"user_{users + 1}"
            out.emit(
                "page",
                "$pageview",
                ts,
                {
                    "url": f"https://{_HOST}/signup",
                    "host": _HOST,
                    "path": "/signup",
                    "title": _TITLES["/signup"],
                },
            )
            ts += rng.randrange(20_000, 180_000)
            out.emit(
                "track",
                "signup",
                ts,
                {"user_id": user_id},
                {"method": rng.choice(["email", "email", "google", "github"]), "channel": channel},
            )
            out.emit(
                "identify",
                "$identify",
                ts + 5,
                {"user_id": user_id},
                {"$traits": {"plan": "free", "country": country}},
            )
            out.alias(anonymous_id, user_id, ts)
            template[COL["user_id"]] = user_id
            template[COL["distinct_id"]] = user_id
            churn = 0.3
        if signed_up and not activated and rng.random() < 0.5:
            activated = True
            ts += rng.randrange(30_000, 900_000)
            out.emit(
                "track",
                "project_created",
                ts,
                None,
                {"template": rng.choice(["web", "mobile", "api", "web3"])},
            )
            ts += rng.randrange(10_000, 300_000)
            out.emit(
                "track",
                "first_event_received",
                ts,
                None,
                {"source": rng.choice(["js", "python", "segment"])},
            )
        if activated and not purchased and rng.random() < 0.22:
            plan, price = _PLANS.pick(rng)
            ts += rng.randrange(60_000, 1_800_000)
            out.emit(
                "page",
                "$pageview",
                ts,
                {
                    "url": f"https://{_APP_HOST}/checkout",
                    "host": _APP_HOST,
                    "path": "/checkout",
                    "title": _TITLES["/checkout"],
                },
            )
            out.emit("track", "checkout_started", ts + 2_000, None, {"plan": plan})
            if rng.random() < 0.68:
                purchased = True
                ts += rng.randrange(30_000, 400_000)
                out.emit(
                    "track",
                    "purchase",
                    ts,
                    None,
                    {"plan": plan, "amount": price, "currency": "USD", "interval": "month"},
                )
        if purchased and rng.random() < 0.3:
            ts += rng.randrange(60_000, 600_000)
            out.emit(
                "track",
                "report_shared",
                ts,
                None,
                {"kind": rng.choice(["funnel", "trend", "retention"])},
            )

        # API traffic from activated accounts' integrations.
        if activated:
            calls = int(rng.expovariate(1 / 14))
            incident = (session_start - start_ms) // 86_400_000 == incident_day
            api_ts = session_start
            api_template = template.copy()
            for column in _CLIENT_COLUMNS:
                api_template[COL[column]] = _DEFAULTS.get(column, "")
            api_template[COL["host"]] = "api.acme-demo.com"
            api_template[COL["library"]] = "sextant-python"
            api_template[COL["library_version"]] = "0.1.0"
            for _ in range(calls):
                route, method, median, sigma, req_bytes, resp_bytes = _ROUTES.pick(rng)
                status = _STATUS.pick(rng)
                if incident and rng.random() < 0.18:
                    status = rng.choice([500, 502, 503, 504])
                duration = round(rng.lognormvariate(math.log(median), sigma), 2)
                if status >= 500:
                    duration = round(duration * rng.uniform(1.5, 8.0), 2)
                api_ts += rng.randrange(200, 60_000)
                out.emit(
                    "api",
                    "$api_request",
                    api_ts,
                    {
                        "http_method": method,
                        "http_route": route,
                        "http_status": status,
                        "duration_ms": duration,
                        "request_bytes": int(req_bytes * rng.uniform(0.5, 1.5)) if req_bytes else 0,
                        "response_bytes": int(resp_bytes * rng.uniform(0.3, 2.0))
                        if status < 300
                        else 120,
                        "path": route,
                    },
                    template=api_template,
                )

        # Web3: connect a wallet, then send transactions on its chain.
        if web3_user and rng.random() < 0.6:
            if not wallet:
                wallet = checksum_address("0x" + _hex(rng, 160))
                chain = _CHAINS.pick(rng)
            assert chain is not None
            chain_id, token, typical = chain
            ts += rng.randrange(5_000, 120_000)
            out.emit(
                "web3",
                "wallet_connected",
                ts,
                {"chain_id": chain_id, "wallet_address": wallet},
                {"connector": rng.choice(["metamask", "walletconnect", "coinbase", "rabby"])},
            )
            for _ in range(int(rng.expovariate(1 / 1.6))):
                use_token = rng.random() < 0.35
                symbol = "USDC" if use_token else token
                amount = rng.lognormvariate(math.log(250 if use_token else typical), 1.1)
                decimals = 6 if use_token else 18
                value = int(amount * 10**decimals)
                tx_hash = "0x" + _hex(rng, 256)
                contract = _CONTRACTS[rng.randrange(len(_CONTRACTS))] if use_token else ""
                fields = {
                    "chain_id": chain_id,
                    "wallet_address": wallet,
                    "tx_hash": tx_hash,
                    "tx_value": value,
                    "token_symbol": symbol,
                    "contract_address": checksum_address(contract) if contract else "",
                }
                ts += rng.randrange(10_000, 300_000)
                out.emit("web3", "tx_submitted", ts, {**fields, "tx_status": "pending"})
                confirmed = rng.random() < 0.91
                ts += rng.randrange(2_000, 90_000)
                out.emit(
                    "web3",
                    "tx_confirmed" if confirmed else "tx_failed",
                    ts,
                    {**fields, "tx_status": "confirmed" if confirmed else "failed"},
                    {"block_time_ms": rng.randrange(400, 15_000)},
                )

        # Retention decays: each return gets less likely and comes later.
        if rng.random() < churn + 0.04 * session_index:
            break
        gap_days = 1 + int(rng.expovariate(1 / (2.0 + 1.5 * session_index)))
        day_start = (session_start // 86_400_000 + gap_days) * 86_400_000
        session_start = day_start + hour_pick.pick(rng) * 3_600_000 + rng.randrange(3_600_000)
    return signed_up


def json_compact_rows(events: list[list[Any]]) -> bytes:
    """Rows as JSONCompactEachRow bytes (big `tx_value`s as strings, which ClickHouse reads)."""
    tx = COL["tx_value"]
    lines = []
    for row in events:
        if row[tx] > 0xFFFFFFFFFFFFFFFF:
            row = row.copy()
            row[tx] = str(row[tx])
        lines.append(orjson.dumps(row))
    # Every datetime is UTC: drop the offset so ClickHouse's fast basic parser reads them
    # (a JSON string inside `properties` has its quotes escaped, so it cannot match).
    return b"\n".join(lines).replace(b'+00:00"', b'"')


def alias_rows(aliases: list[list[Any]]) -> bytes:
    return b"\n".join(orjson.dumps(row) for row in aliases).replace(b'+00:00"', b'"')


_LOAD_SETTINGS = {
    "date_time_input_format": "basic",
    "optimize_on_insert": 0,
    "input_format_parallel_parsing": 0,
}


def load(
    store: EventStore,
    project_id: str,
    n_events: int,
    *,
    seed: int = 42,
    days: int = 90,
    batch_size: int = 100_000,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Generate and insert demo rows; inserts run in a thread while the next batch is built."""
    inserted = 0
    with ThreadPoolExecutor(1, thread_name_prefix="sextant-demo") as pool:
        pending: Future[None] | None = None

        def insert(events: bytes, aliases: bytes) -> None:
            if aliases:
                store.insert_raw(
                    "person_aliases",
                    aliases,
                    fmt="JSONCompactEachRow",
                    column_names=ALIAS_COLUMNS,
                    settings=_LOAD_SETTINGS,
                )
            store.insert_raw(
                "events",
                events,
                fmt="JSONCompactEachRow",
                column_names=EVENT_COLUMNS,
                settings=_LOAD_SETTINGS,
            )

        for batch in generate_rows(project_id, n_events, seed, days, batch_size=batch_size):
            payload = (json_compact_rows(batch.events), alias_rows(batch.aliases))
            if pending is not None:
                pending.result()
                if on_progress is not None:
                    on_progress(inserted)
            pending = pool.submit(insert, *payload)
            inserted += len(batch.events)
        if pending is not None:
            pending.result()
    if on_progress is not None:
        on_progress(inserted)
    return inserted


__all__ = [
    "ALIAS_COLUMNS",
    "EVENT_COLUMNS",
    "DemoBatch",
    "DemoWorkspace",
    "alias_rows",
    "create_workspace",
    "generate_rows",
    "json_compact_rows",
    "load",
]


@dataclass(frozen=True, slots=True)
class DemoWorkspace:
    email: str
    password: str
    org_id: str
    project_id: str
    write_key: str
    read_key: str


DEMO_EMAIL = "demo@example.com"


def create_workspace(
    db: Database, settings: Settings, *, timezone: str = "Europe/Berlin"
) -> DemoWorkspace:
    """A demo user (new password each run), organisation, project and write + read keys."""
    from sextant.accounts import repository as accounts_repository
    from sextant.accounts import service as accounts_service
    from sextant.core.db import utcnow
    from sextant.projects import service as projects_service
    from sextant.projects.models import KeyKind

    password = secrets.token_urlsafe(12)
    with db.session() as session:
        user = accounts_repository.get_user_by_email(session, DEMO_EMAIL)
        if user is None:
            user = accounts_service.create_user(
                session, settings=settings, email=DEMO_EMAIL, password=password, name="Demo User"
            )
        else:
            user.password_hash = accounts_service.password_hasher(settings).hash(password)
            user.password_changed_at = utcnow()
            user.is_active = True
            session.commit()
        org = accounts_service.create_org(session, user=user, name="Acme Demo")
        access = projects_service.create_project(
            session,
            user=user,
            org_id=org.org.id,
            name="Acme web shop",
            timezone=timezone,
            retention_days=400,
            store_raw_ip=False,
        )
        _, write_key = projects_service.create_key(
            session, access=access, name="demo write key", kind=KeyKind.WRITE, expires_at=None
        )
        _, read_key = projects_service.create_key(
            session, access=access, name="demo read key", kind=KeyKind.READ, expires_at=None
        )
        return DemoWorkspace(
            DEMO_EMAIL, password, org.org.id, access.project.id, write_key, read_key
        )
