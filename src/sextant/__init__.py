"""Sextant: self-hosted, multi-tenant event analytics."""

__version__ = "0.1.0"
