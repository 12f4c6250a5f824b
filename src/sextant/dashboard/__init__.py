"""Dashboard domain."""
