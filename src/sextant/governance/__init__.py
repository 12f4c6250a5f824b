"""Data governance: retention, one person's data (export, deletion), bulk export."""
