"""Enrichment and normalisation rules, unit by unit."""

from __future__ import annotations

import pytest

from sextant.ingest.enrich import (
    GeoResolver,
    IpHasher,
    TrustedProxies,
    checksum_address,
    parse_user_agent,
    referrer_domain,
    url_parts,
)
from sextant.ingest.normalize import (
    SKEW_TOLERANCE_MS,
    InvalidEvent,
    parse_timestamp,
    resolve_timestamp,
)


@pytest.mark.parametrize(
    ("ua", "expected"),
    [
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/119.0.0.0 Safari/537.36 Edg/119.0.2151.72",
            ("Edge", "119.0", "Windows", "10", "desktop", 0),
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0.6099.43 Mobile Safari/537.36",
            ("Chrome Mobile", "120.0", "Android", "14", "mobile", 0),
        ),
        (
            "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
            "Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
            ("Mobile Safari", "16.6", "iOS", "16.6", "tablet", 0),
        ),
        (
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            ("Googlebot", "2.1", "Other", "", "bot", 1),
        ),
        ("python-requests/2.31.0", ("Python Requests", "2.31", "Other", "", "bot", 1)),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "HeadlessChrome/120.0.0.0 Safari/537.36",
            ("HeadlessChrome", "120.0", "Linux", "", "bot", 1),
        ),
    ],
)
def test_user_agent_parsing_and_bots(ua: str, expected: tuple[object, ...]) -> None:
    info = parse_user_agent(ua)
    got = (
        info.browser,
        info.browser_version,
        info.os,
        info.os_version,
        info.device_type,
        info.is_bot,
    )
    assert got == expected


def test_user_agent_results_are_cached() -> None:
    ua = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0 cache-probe"
    before = parse_user_agent.cache_info().hits
    assert parse_user_agent(ua) is parse_user_agent(ua)
    assert parse_user_agent.cache_info().hits == before + 1
    assert parse_user_agent.cache_info().maxsize == 10_000


def test_url_parts_and_referrer() -> None:
    host, path, utm, click = url_parts(
        "https://WWW.Shop.io/p/1?UTM_Source=x&utm_medium=cpc&msclkid=m1&gclid=g1#frag"
    )
    assert (host, path) == ("www.shop.io", "/p/1")
    assert utm == {"utm_source": "x", "utm_medium": "cpc"}
    assert click == "msclkid=m1"  # the first click id in the URL
    assert url_parts("https://shop.io") == ("shop.io", "/", {}, "")
    assert url_parts("not a url")[0] == ""
    assert url_parts("http://[::1") == ("", "", {}, "")  # invalid IPv6 literal: no crash
    assert referrer_domain("https://www.news.ycombinator.com/item?id=1") == "news.ycombinator.com"
    assert referrer_domain("") == ""


def test_forwarded_for_only_from_trusted_proxies() -> None:
    proxies = TrustedProxies(["10.0.0.0/8", "192.168.1.1", "not-an-ip"])
    xff = "203.0.113.7, 198.51.100.2, 10.1.2.3"
    assert proxies.client_ip("10.0.0.5", xff) == "198.51.100.2"  # first untrusted from the right
    assert proxies.client_ip("192.168.1.1", "203.0.113.7") == "203.0.113.7"
    assert proxies.client_ip("8.8.8.8", xff) == "8.8.8.8"  # untrusted peer: header ignored
    assert proxies.client_ip("10.0.0.5", None) == "10.0.0.5"
    assert TrustedProxies([]).client_ip("10.0.0.5", xff) == "10.0.0.5"


def test_ip_hash_rotates_daily_and_differs_per_project() -> None:
    hasher = IpHasher("secret-one")
    day1 = hasher.hash("203.0.113.9", project_id="p1", day="2026-01-01")
    assert day1 == hasher.hash("203.0.113.9", project_id="p1", day="2026-01-01")
    assert day1 != hasher.hash("203.0.113.9", project_id="p1", day="2026-01-02")
    assert day1 != hasher.hash("203.0.113.9", project_id="p2", day="2026-01-01")
    assert day1 != IpHasher("secret-two").hash("203.0.113.9", project_id="p1", day="2026-01-01")
    assert "203.0.113.9" not in day1
    assert hasher.hash("", project_id="p1", day="2026-01-01") == ""


def test_geo_country_from_bundled_database() -> None:
    geo = GeoResolver()
    assert geo.lookup("81.2.69.160").country == "GB"
    assert geo.lookup("8.8.8.8").country == "US"
    assert geo.lookup("10.1.2.3").country == ""  # private range
    assert geo.lookup("garbage").country == ""


def test_eip55_checksums() -> None:
    vectors = [
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ]
    for address in vectors:
        assert checksum_address(address.lower()) == address
        assert checksum_address(address.upper().replace("0X", "0x")) == address


def test_timestamp_parsing() -> None:
    assert parse_timestamp("2026-01-01T00:00:00Z", "t") == 1_767_225_600_000
    assert parse_timestamp("2026-01-01T01:00:00+01:00", "t") == 1_767_225_600_000
    assert parse_timestamp("2026-01-01 00:00:00.5", "t") == 1_767_225_600_500
    assert parse_timestamp(1_767_225_600, "t") == 1_767_225_600_000
    assert parse_timestamp(1_767_225_600_123, "t") == 1_767_225_600_123
    assert parse_timestamp("1767225600.5", "t") == 1_767_225_600_500
    for bad in ("yesterday", True, [1], float("nan")):
        with pytest.raises(InvalidEvent):
            parse_timestamp(bad, "t")


def test_skew_correction_rule() -> None:
    received = 1_767_225_600_000
    # No sentAt, or a skew within the tolerance: the client's timestamp stands.
    assert resolve_timestamp(received - 5_000, None, received) == received - 5_000
    small = received - SKEW_TOLERANCE_MS + 1
    assert resolve_timestamp(received - 9_000, small, received) == received - 9_000
    # A clock 2 hours behind: shifted by the skew, rounded to whole seconds.
    sent = received - 7_200_000 - 420
    corrected = resolve_timestamp(sent - 60_000, sent, received)
    assert corrected == sent - 60_000 + 7_200_000
    # No timestamp: the receive time.
    assert resolve_timestamp(None, sent, received) == received
