"""A small, realistic data set sent through the Python SDK: web traffic over four weeks,
a sign-up -> activation -> purchase funnel, returning visitors, API traffic and Web3
transactions. Deterministic (seeded), so screenshots look the same every run."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

from sextant.sdk import Client

PATHS = ["/", "/pricing", "/blog/launch", "/docs", "/docs/install", "/about"]
REFERRERS = [
    "https://www.google.com/",
    "https://www.google.com/",
    "https://news.ycombinator.com/",
    "https://twitter.com/",
    "https://github.com/",
    "",
    "",
]
CAMPAIGNS = [
    ("", "", ""),
    ("", "", ""),
    ("newsletter", "email", "spring_launch"),
    ("twitter", "social", "launch_week"),
]
_WEBKIT = "AppleWebKit/537.36 (KHTML, like Gecko)"
_SAFARI = "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4"
AGENTS = [
    f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) {_WEBKIT} Chrome/126.0.0.0 Safari/537.36",
    f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) {_SAFARI} Safari/605.1.15",
    f"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) {_SAFARI} Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
    f"Mozilla/5.0 (Linux; Android 14; Pixel 8) {_WEBKIT} Chrome/126.0.0.0 Mobile Safari/537.36",
]
IPS = [
    "8.8.8.8",
    "81.2.69.142",
    "5.9.0.1",
    "89.160.20.112",
    "1.128.0.1",
    "24.48.0.1",
    "200.160.2.3",
]
ROUTES = [
    ("GET", "/api/items", 0.45, 18.0),
    ("GET", "/api/items/{item_id}", 0.25, 9.0),
    ("POST", "/api/orders", 0.12, 65.0),
    ("GET", "/api/users/me", 0.13, 6.0),
    ("DELETE", "/api/items/{item_id}", 0.05, 30.0),
]
TOKENS = [(1, "ETH", 10**18), (137, "MATIC", 10**18), (8453, "USDC", 10**6), (1, "USDC", 10**6)]


def seed(client: Client, *, visitors: int = 240, days: int = 28, seed: int = 7) -> int:
    """Send the data set; returns how many events were queued."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    sent = 0
    for n in range(visitors):
        anon = f"anon-{seed}-{n}"
        ua = rng.choice(AGENTS)
        ip = rng.choice(IPS)
        first_day = rng.randint(0, days - 1)
        # Retention that decays: most visitors come once, some come back over the weeks.
        visits = [first_day]
        for gap in (1, 3, 7, 14):
            if rng.random() < 0.35 and first_day - gap >= 0:
                visits.append(first_day - gap)
        user_id = None
        for visit_index, days_ago in enumerate(visits):
            start = now - timedelta(
                days=days_ago, hours=rng.randint(0, 20), minutes=rng.randint(0, 59)
            )
            session = str(uuid.UUID(int=rng.getrandbits(128)))
            source, medium, campaign = rng.choice(CAMPAIGNS)
            query = (
                f"?utm_source={source}&utm_medium={medium}&utm_campaign={campaign}"
                if source
                else ""
            )
            referrer = rng.choice(REFERRERS) if visit_index == 0 else ""
            landing = rng.choice(PATHS[:3])
            path_seq = [landing] + rng.sample(PATHS, rng.randint(0, 3))
            ctx = {"userAgent": ua, "ip": ip, "locale": "en-US"}
            for step, path in enumerate(path_seq):
                url = f"https://shop.example.com{path}{query if step == 0 else ''}"
                client.page(
                    url,
                    title=path.strip("/").title() or "Home",
                    referrer=referrer
                    if step == 0
                    else f"https://shop.example.com{path_seq[step - 1]}",
                    user_id=user_id,
                    anonymous_id=anon,
                    context=ctx,
                    timestamp=start + timedelta(seconds=40 * step),
                    session_id=session,
                )
                sent += 1
            at = start + timedelta(minutes=5)
            if visit_index == 0 and rng.random() < 0.4:
                user_id = f"user-{seed}-{n}"
                client.identify(
                    user_id,
                    {"email": f"user{n}@example.com", "plan": rng.choice(["free", "pro"])},
                    anonymous_id=anon,
                    context=ctx,
                    timestamp=at,
                )
                client.track(
                    "signup",
                    {"plan": "free"},
                    user_id=user_id,
                    anonymous_id=anon,
                    context=ctx,
                    timestamp=at,
                    session_id=session,
                )
                sent += 2
                if rng.random() < 0.55:
                    client.track(
                        "activated",
                        user_id=user_id,
                        context=ctx,
                        timestamp=at + timedelta(minutes=20),
                    )
                    sent += 1
                    if rng.random() < 0.45:
                        client.track(
                            "purchase",
                            {"amount": rng.choice([19, 49, 99])},
                            user_id=user_id,
                            context=ctx,
                            timestamp=at + timedelta(hours=2),
                        )
                        sent += 1
            elif user_id and rng.random() < 0.6:
                client.track(
                    "report_viewed", user_id=user_id, context=ctx, timestamp=at, session_id=session
                )
                sent += 1
    for _ in range(600):
        method, route, _, base = rng.choices(ROUTES, weights=[r[2] for r in ROUTES])[0]
        roll = rng.random()
        status = 500 if roll < 0.03 else 404 if roll < 0.08 else 201 if method == "POST" else 200
        client.api_request(
            method=method,
            route=route,
            status=status,
            duration_ms=round(rng.lognormvariate(0, 0.6) * base, 2),
            request_bytes=rng.randint(0, 800) if method == "POST" else 0,
            response_bytes=rng.randint(200, 9000),
            distinct_id=f"api-client-{rng.randint(1, 25)}",
            timestamp=now - timedelta(minutes=rng.randint(0, days * 24 * 60)),
        )
        sent += 1
    for n in range(70):
        wallet = "0x" + f"{rng.getrandbits(160):040x}"
        chain, token, unit = rng.choice(TOKENS)
        at = now - timedelta(hours=rng.randint(0, days * 24))
        client.web3("wallet_connected", chain_id=chain, wallet=wallet, timestamp=at)
        ok = rng.random() < 0.88
        client.web3(
            "tx_confirmed" if ok else "tx_failed",
            chain_id=chain,
            wallet=wallet,
            contract="0x"
            + rng.choice(
                [
                    "a0b86991c6218b36c1d19d4a2e9eb0ce3606eb48",
                    "7a250d5630b4cf539739df2c5dacb4c659f2488d",
                ]
            ),
            tx_hash="0x" + f"{rng.getrandbits(256):064x}",
            value=rng.randint(1, 50) * unit // 10,
            token=token,
            status="confirmed" if ok else "failed",
            timestamp=at + timedelta(minutes=1),
        )
        sent += 2
    return sent
