"""Sdk domain."""
