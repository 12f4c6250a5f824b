"""Path parameter convertors the routers share."""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor


class AnyTextConvertor(Convertor[str]):
    """Any text, "/" and line breaks included: an id a client chose (a distinct id holds
    whatever ingestion accepted, and arrives percent-encoded, which the router has decoded
    before matching). Starlette's `path` stops at a line break."""

    regex = "[\\s\\S]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


_registered = False


def register() -> None:
    """Make `{name:any_text}` available to routes (once per process)."""
    global _registered
    if not _registered:
        register_url_convertor("any_text", AnyTextConvertor())
        _registered = True
