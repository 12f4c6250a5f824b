"""The baseline for benchmarks/ingest.py: a FastAPI endpoint that only parses the JSON body.

Same server stack as `sextant serve` (uvicorn, one worker, uvloop, httptools) and the same
JSON parser (orjson), so the ratio isolates what Sextant's pipeline adds.
"""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Request
from starlette.responses import Response

app = FastAPI()


@app.post("/api/v1/events")
async def parse_only(request: Request) -> Response:
    payload = orjson.loads(await request.body())
    count = len(payload["batch"]) if isinstance(payload, dict) and "batch" in payload else 1
    return Response(
        orjson.dumps({"accepted": count, "rejected": []}),
        status_code=202,
        media_type="application/json",
    )
