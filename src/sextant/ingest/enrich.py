"""Enrichment before storing: user agent, geo by IP, IP hashing, URL and referrer parts.

Everything here is on the hot path, so results that repeat (user agents, IPs, wallet
checksums, daily salts) are cached, and the slow-to-load geo database is opened once.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import structlog

log = structlog.get_logger(__name__)

# HTTP libraries and tools: when one of these sends the request itself, it is a server (or a
# script) reporting on someone else's behalf, not the visitor. Its User-Agent header then says
# nothing about the visitor, so it is ignored rather than recorded (or flagged as a bot).
_HTTP_LIBRARY = re.compile(
    r"^(curl|wget|python-requests|python-urllib|python-httpx|aiohttp|go-http-client|okhttp|"
    r"node-fetch|undici|axios|got|java|apache-httpclient|libwww-perl|httpie|dart|"
    r"postmanruntime|insomnia|ruby|faraday|guzzlehttp|rest-client|reqwest|sextant-python|"
    r"analytics-python|analytics-node|analytics-ruby|analytics-go)\b",
    re.IGNORECASE,
)


def visitor_user_agent(header: str) -> str:
    """The request's User-Agent if a browser sent it; '' for server-side HTTP clients."""
    return "" if _HTTP_LIBRARY.match(header) else header


_BOT = re.compile(
    r"bot\b|bot/|crawl|spider|slurp|bingpreview|facebookexternalhit|headless|phantomjs|"
    r"python-requests|python-urllib|curl/|wget/|go-http-client|httpclient|okhttp|"
    r"lighthouse|pingdom|uptime|monitor|scrapy|preview|archiver|feedfetcher|"
    r"apache-httpclient|java/|libwww|node-fetch|axios/",
    re.IGNORECASE,
)
_TABLET = re.compile(r"ipad|tablet|kindle|silk/|playbook|nexus (7|9|10)|sm-t\d", re.IGNORECASE)
_MOBILE_OS = {"iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS", "Firefox OS"}

CLICK_IDS = (
    "gclid",
    "gbraid",
    "wbraid",
    "dclid",
    "fbclid",
    "msclkid",
    "ttclid",
    "twclid",
    "li_fat_id",
    "yclid",
    "rdt_cid",
    "epik",
    "sccid",
    "irclid",
)
_CLICK_ID_SET = frozenset(CLICK_IDS)
_UTM = {
    "utm_source": "utm_source",
    "utm_medium": "utm_medium",
    "utm_campaign": "utm_campaign",
    "utm_term": "utm_term",
    "utm_content": "utm_content",
}


@dataclass(frozen=True, slots=True)
class UserAgentInfo:
    browser: str
    browser_version: str
    os: str
    os_version: str
    device_type: str
    is_bot: int


@dataclass(frozen=True, slots=True)
class GeoInfo:
    country: str
    region: str
    city: str


_NO_GEO = GeoInfo("", "", "")
_EMPTY_UA = UserAgentInfo("", "", "", "", "", 0)


def _version(*parts: str | None) -> str:
    out = []
    for part in parts:
        if not part:
            break
        out.append(part)
    return ".".join(out)


@lru_cache(maxsize=10_000)
def parse_user_agent(ua: str) -> UserAgentInfo:
    """Browser, OS, device type and bot flag of a User-Agent string (cached)."""
    if not ua:
        return _EMPTY_UA
    from ua_parser import parse

    try:
        result = parse(ua[:1024])
    except Exception:  # a pathological UA must not fail the event
        return UserAgentInfo("Other", "", "Other", "", "desktop", int(bool(_BOT.search(ua))))
    agent, os_, device = result.user_agent, result.os, result.device
    browser = agent.family if agent else "Other"
    browser_version = _version(agent.major, agent.minor) if agent else ""
    os_name = os_.family if os_ else "Other"
    os_version = _version(os_.major, os_.minor) if os_ else ""
    device_family = device.family if device else ""
    is_bot = device_family == "Spider" or bool(_BOT.search(ua))
    if is_bot:
        device_type = "bot"
    elif _TABLET.search(ua) or (os_name == "Android" and "Mobile" not in ua):
        device_type = "tablet"
    elif os_name in _MOBILE_OS or "Mobile" in ua:
        device_type = "mobile"
    else:
        device_type = "desktop"
    return UserAgentInfo(browser, browser_version, os_name, os_version, device_type, int(is_bot))


# Operating system names as apps' SDKs send them (Segment's context.os), as ua-parser names
# the same systems in a user agent, so one system is one row of a breakdown.
_OS_NAMES = {
    "ios": "iOS",
    "ipados": "iOS",
    "iphone os": "iOS",
    "android": "Android",
    "macos": "Mac OS X",
    "mac os": "Mac OS X",
    "mac os x": "Mac OS X",
    "windows": "Windows",
    "linux": "Linux",
    "tvos": "tvOS",
    "watchos": "watchOS",
    "chrome os": "Chrome OS",
    "chromeos": "Chrome OS",
}
_APP_DEVICE_TYPES = {
    "ios": "mobile",
    "android": "mobile",
    "mobile": "mobile",
    "phone": "mobile",
    "smartphone": "mobile",
    "ipados": "tablet",
    "tablet": "tablet",
    "macos": "desktop",
    "windows": "desktop",
    "linux": "desktop",
    "desktop": "desktop",
    "tv": "tv",
    "tvos": "tv",
    "watchos": "wearable",
}


def app_device_columns(context: dict[str, Any]) -> dict[str, Any]:
    """OS and device type of an app's event from Segment's `context.os` and `context.device`
    (mobile SDKs send these, not a user agent): the columns a user agent would give."""
    columns: dict[str, Any] = {}
    os_info = context.get("os")
    os_name = ""
    if os_info.__class__ is dict:
        name = os_info.get("name")
        if name.__class__ is str and name.strip():
            os_name = _OS_NAMES.get(name.strip().lower(), name.strip()[:64])
            columns["os"] = os_name
            version = os_info.get("version")
            if version.__class__ is str and version:
                columns["os_version"] = ".".join(version.strip().split(".")[:2])[:32]
    device = context.get("device")
    kind = ""
    if device.__class__ is dict:
        value = device.get("type")
        if value.__class__ is str:
            kind = _APP_DEVICE_TYPES.get(value.strip().lower(), "")
        model = device.get("model")
        if model.__class__ is str and model.startswith("iPad"):
            kind = "tablet"
    if not kind and os_name in _MOBILE_OS:
        kind = "mobile"
    if kind:
        columns["device_type"] = kind
    return columns


@lru_cache(maxsize=10_000)
def url_parts(url: str) -> tuple[str, str, dict[str, str], str]:
    """(host, path, utm fields, click id as `name=value`) of a page URL (cached)."""
    if not url:
        return "", "", {}, ""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return "", "", {}, ""
    path = parts.path or ("/" if host else "")
    utm: dict[str, str] = {}
    click_id = ""
    if parts.query:
        for key, value in parse_qsl(parts.query, keep_blank_values=False):
            lowered = key.lower()
            column = _UTM.get(lowered)
            if column is not None:
                utm.setdefault(column, value[:256])
            elif not click_id and lowered in _CLICK_ID_SET:
                click_id = f"{lowered}={value[:256]}"
    return host, path, utm, click_id


@lru_cache(maxsize=10_000)
def user_agent_columns(ua: str) -> dict[str, Any]:
    """The `events` columns of a user agent, ready to merge into a row (cached)."""
    info = parse_user_agent(ua)
    columns: dict[str, Any] = {
        "browser": info.browser,
        "browser_version": info.browser_version,
        "os": info.os,
        "os_version": info.os_version,
        "device_type": info.device_type,
    }
    if info.is_bot:
        columns["is_bot"] = 1
    return columns


@lru_cache(maxsize=10_000)
def url_columns(url: str) -> dict[str, Any]:
    """The `events` columns of a page URL (host, path, UTM, click id), cached."""
    host, path, utm, click_id = url_parts(url)
    columns: dict[str, Any] = {"url": url, "host": host, "path": path, **utm}
    if click_id:
        columns["click_id"] = click_id
    return columns


@lru_cache(maxsize=10_000)
def referrer_domain(referrer: str) -> str:
    """The referrer's host without `www.` (`$direct` is left to the reports)."""
    if not referrer:
        return ""
    try:
        host = (urlsplit(referrer).hostname or "").lower()
    except ValueError:
        return ""
    return host[4:] if host.startswith("www.") else host


class TrustedProxies:
    """Resolves the client IP, honouring `X-Forwarded-For` only from trusted proxies."""

    def __init__(self, entries: Sequence[str]) -> None:
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in entries:
            try:
                self.networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                log.warning("ignoring_invalid_trusted_proxy", entry=entry)
        self._trusted = lru_cache(maxsize=4096)(self._is_trusted)

    def _is_trusted(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in net for net in self.networks)

    def client_ip(self, peer: str, forwarded_for: str | None) -> str:
        """The first untrusted address walking X-Forwarded-For right to left from the peer."""
        if not forwarded_for or not self.networks or not self._trusted(peer):
            return peer
        hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
        for hop in reversed(hops):
            if not self._trusted(hop):
                return hop
        return hops[0] if hops else peer


class GeoResolver:
    """Country from geoip2fast (bundled data); region and city from a MaxMind `.mmdb`."""

    def __init__(self, city_db: Path | None = None) -> None:
        from geoip2fast import GeoIP2Fast

        self._country = GeoIP2Fast(verbose=False)
        self._city: Any = None
        if city_db is not None:
            import maxminddb

            self._city = maxminddb.open_database(str(city_db))
        self.lookup = lru_cache(maxsize=50_000)(self._lookup)

    def _lookup(self, ip: str) -> GeoInfo:
        if not ip:
            return _NO_GEO
        country = region = city = ""
        if self._city is not None:
            with contextlib.suppress(ValueError, TypeError):
                record = self._city.get(ip)
                if isinstance(record, dict):
                    country = str((record.get("country") or {}).get("iso_code") or "")
                    subdivisions = record.get("subdivisions") or []
                    if subdivisions:
                        region = str((subdivisions[0].get("names") or {}).get("en") or "")
                    city = str(((record.get("city") or {}).get("names") or {}).get("en") or "")
        if not country:
            try:
                result = self._country.lookup(ip)
                code = getattr(result, "country_code", "") or ""
            except Exception:
                code = ""
            # geoip2fast answers "--" for private/unknown ranges.
            country = code if len(code) == 2 and code.isalpha() else ""
        return GeoInfo(country, region, city)

    def close(self) -> None:
        if self._city is not None:
            self._city.close()


class IpHasher:
    """sha256(daily salt, project, ip): stable for a day, unlinkable across days and tenants.

    The salt is derived from the server secret and the UTC date, so it rotates at midnight
    without being stored anywhere and every worker computes the same one.
    """

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()
        self._day = ""
        self._salt = b""

    def salt_for(self, day: str) -> bytes:
        if day != self._day:
            self._salt = hashlib.sha256(self._secret + b"|ip-salt|" + day.encode()).digest()
            self._day = day
        return self._salt

    def hash(self, ip: str, *, project_id: str, day: str) -> str:
        """Hash `ip` for `project_id` with the salt of `day` (`YYYY-MM-DD`, UTC)."""
        if not ip:
            return ""
        salt = self.salt_for(day)
        return hashlib.sha256(salt + project_id.encode() + b"|" + ip.encode()).hexdigest()[:32]


def checksum_address(address: str) -> str:
    """EIP-55 mixed-case checksum of a 20-byte hex address (input already validated)."""
    return _checksum(address[2:].lower())


@lru_cache(maxsize=100_000)
def _checksum(hex40: str) -> str:
    from eth_hash.auto import keccak

    digest = keccak(hex40.encode()).hex()
    return "0x" + "".join(
        ch.upper() if ch.isalpha() and int(digest[i], 16) >= 8 else ch for i, ch in enumerate(hex40)
    )
