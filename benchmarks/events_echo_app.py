"""The baseline ``POST /v1/events`` is compared with: the same bodies parsed, checked, not stored.

Each event goes through the events API's own schema (``EventBody``) and gets a
result of the same shape; what is left out is the stitching and the SQLite
commit. Served by uvicorn as ``nudge serve`` is:

    uvicorn benchmarks.events_echo_app:app --log-level warning
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request, Response

from serving.events_api import EventBody

app = FastAPI()


@app.post("/v1/events", status_code=202)
async def events(request: Request) -> Response:
    raw = orjson.loads(await request.body())
    if not (isinstance(raw, dict) and "events" in raw):
        one = EventBody.model_validate(raw)
        body = orjson.dumps({"status": "accepted", "event_id": one.event_id})
        return Response(body, status_code=202, media_type="application/json")
    items: list[Any] = raw["events"]
    results = [
        {"index": i, "status": "accepted", "event_id": EventBody.model_validate(item).event_id}
        for i, item in enumerate(items)
    ]
    body = {"accepted": len(results), "duplicate": 0, "refused": 0, "results": results}
    return Response(orjson.dumps(body), status_code=202, media_type="application/json")
