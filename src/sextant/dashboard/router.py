"""The web dashboard (a single page of vanilla JS modules) and the browser tracker `/t.js`.

Public routes by design: the page itself holds no data (it calls the authenticated API
with the signed-in user's token), and the tracker carries only a public write key.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response

from sextant.core.errors import NotFound

router = APIRouter(include_in_schema=False)

STATIC_DIR = Path(str(resources.files("sextant.dashboard") / "static"))
TRACKER_PATH = Path(str(resources.files("sextant.sdk") / "tracker.js"))

_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".ico": "image/x-icon",
    ".png": "image/png",
}
# The dashboard's own pages: only same-origin scripts, styles and API calls.
_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    gzipped: bytes
    etag: str
    media_type: str


def _asset(body: bytes, media_type: str) -> Asset:
    etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    return Asset(body, gzip.compress(body, 9, mtime=0), etag, media_type)


def minify_js(source: str) -> str:
    """Drop comments and indentation: enough to keep the tracker under 2 KB gzipped.

    Deliberately conservative (block comments, and `//` comments that follow whitespace),
    so it is only applied to the tracker, whose source avoids such text inside strings.
    """
    source = re.sub(r"/\*.*?\*/", "", source, flags=re.DOTALL)
    source = re.sub(r"(?m)\s+//\s.*$", "", source)
    return "\n".join(line.strip() for line in source.splitlines() if line.strip()) + "\n"


@lru_cache(maxsize=1)
def tracker_asset() -> Asset:
    return _asset(minify_js(TRACKER_PATH.read_text("utf-8")).encode(), _TYPES[".js"])


@lru_cache(maxsize=256)
def _static_asset(name: str, mtime_ns: int) -> Asset:
    path = STATIC_DIR / name
    media_type = _TYPES.get(path.suffix) or mimetypes.guess_type(name)[0] or "text/plain"
    return _asset(path.read_bytes(), media_type)


def static_asset(name: str) -> Asset:
    path = (STATIC_DIR / name).resolve()
    if not path.is_relative_to(STATIC_DIR.resolve()) or not path.is_file():
        raise NotFound(f"no such asset: {name}")
    return _static_asset(str(path.relative_to(STATIC_DIR.resolve())), path.stat().st_mtime_ns)


def _serve(request: Request, asset: Asset, headers: dict[str, str]) -> Response:
    headers = {**headers, "ETag": asset.etag, "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(asset.gzipped, media_type=asset.media_type, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


@router.get("/t.js")
def tracker(request: Request) -> Response:
    """The browser tracker: `<script src="https://your-sextant/t.js" data-key="sx_w_..." defer>`."""
    return _serve(
        request,
        tracker_asset(),
        {
            "Cache-Control": "public, max-age=3600",
            "Access-Control-Allow-Origin": "*",
            "Cross-Origin-Resource-Policy": "cross-origin",
        },
    )


@router.get("/assets/{name:path}")
def asset(request: Request, name: str) -> Response:
    """A dashboard asset (revalidated with its ETag, so a new release shows at once)."""
    return _serve(request, static_asset(name), {"Cache-Control": "no-cache"})


@router.get("/")
def index(request: Request) -> Response:
    """The dashboard: a single page that routes with the URL fragment (`/#/overview`)."""
    return _serve(
        request,
        static_asset("index.html"),
        {
            "Cache-Control": "no-cache",
            "Content-Security-Policy": _CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        },
    )
