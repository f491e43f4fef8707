"""The baseline a decision is compared with: the same request, parsed and echoed, nothing else.

The route takes the decide endpoint's own request schema (so the framework and
pydantic do the same parsing work) and serialises its answer once, as the
decide route does; what it leaves out is the engine. Served by uvicorn with the
same workers, event loop and HTTP parser as ``nudge serve``:

    uvicorn benchmarks.echo_app:app --workers 2 --log-level warning
"""

from __future__ import annotations

from fastapi import FastAPI, Response

from serving.schemas import DecideRequest

app = FastAPI()


@app.post("/v1/decide")
async def echo(body: DecideRequest) -> Response:
    return Response(body.model_dump_json(), media_type="application/json")
