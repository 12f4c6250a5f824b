"""Schema migrations: Alembic for the control plane, versioned SQL files for the event store."""
