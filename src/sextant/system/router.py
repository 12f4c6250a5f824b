"""Liveness, readiness and Prometheus metrics. Public on purpose: probes carry no credentials."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from sextant import __version__
from sextant.core.errors import ServiceUnavailable
from sextant.system import service
from sextant.system.schemas import Health, Readiness

router = APIRouter(tags=["system"])


@router.get("/health")
def health() -> Health:
    """Liveness: the process is up and serving requests."""
    return Health(status="ok", version=__version__)


@router.get(
    "/health/ready",
    responses={503: {"description": "At least one store is down; `details` says which."}},
)
def ready(request: Request) -> Readiness:
    """Readiness: the control-plane database, the event store and Redis (if configured).

    `degraded` (still 200): the event store answers but its disk is low or read-only, so
    ingestion is refused while reads are served.
    """
    checks = service.check_stores(request.app.state)
    down = [c for c in checks if c.status == "down"]
    if down:
        names = ", ".join(c.name for c in down)
        raise ServiceUnavailable(
            f"not ready: {names} unavailable",
            details=[c.model_dump() for c in checks],
            code="not_ready",
            retry_after=5,
        )
    degraded = any(c.status == "degraded" for c in checks)
    return Readiness(
        status="degraded" if degraded else "ok",
        checks=checks,
        event_store_disk=service.disk_reading(request.app.state),
    )


@router.get("/metrics", response_class=Response)
def metrics() -> Response:
    """Prometheus metrics in the text exposition format."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
