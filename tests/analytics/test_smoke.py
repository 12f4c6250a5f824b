from __future__ import annotations

from collections.abc import Callable
from typing import Any

Dataset = Any


def test_every_kind_runs(dataset: Callable[..., Dataset]) -> None:
    d = dataset("Asia/Tokyo")
    d.track("$pageview", "a", "2026-11-19 10:00:00", path="/", browser="Chrome")
    d.track("signup", "a", "2026-11-19 10:05:00")
    d.track(
        "$api_request",
        "a",
        "2026-11-19 10:06:00",
        type="api",
        http_method="GET",
        http_route="/x",
        http_status=500,
        duration_ms=12.5,
    )
    d.track(
        "tx",
        "a",
        "2026-11-19 10:07:00",
        type="web3",
        tx_hash="0x1",
        wallet_address="0xAb",
        chain_id=1,
        token_symbol="ETH",
        tx_value=10**30,
        tx_status="success",
        contract_address="0xC",
    )
    d.alias("a", "person-a")
    kinds: list[dict[str, Any]] = [
        {
            "kind": "trends",
            "series": [
                {"measure": "total"},
                {"measure": "unique_persons"},
                {"measure": "sum", "property": "tx_value"},
                {"measure": "p95", "property": "duration_ms"},
            ],
            "compare": True,
            "breakdown": {"property": "browser"},
        },
        {"kind": "funnel", "steps": [{"event": "$pageview"}, {"event": "signup"}]},
        {
            "kind": "funnel",
            "steps": [{"event": "$pageview"}, {"event": "signup"}],
            "order": "any",
            "breakdown": {"property": "browser"},
        },
        {
            "kind": "funnel",
            "steps": [{"event": "$pageview"}, {"event": "signup"}],
            "order": "strict",
        },
        {"kind": "retention", "date_from": "-30d"},
        {"kind": "active_users"},
        {"kind": "paths", "event": "$pageview"},
        {"kind": "paths", "event": "signup", "direction": "previous"},
        {"kind": "person", "distinct_id": "a"},
        {"kind": "events", "limit": 2},
        {"kind": "api_metrics"},
        {"kind": "web3"},
    ]
    for body in kinds:
        out = d.query(body)
        print(body["kind"], out)
