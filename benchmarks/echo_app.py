"""A bare FastAPI endpoint with a pydantic body: the baseline a decision is compared with."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel


class Echo(BaseModel):
    customer_id: str


app = FastAPI()


@app.post("/v1/decide")
async def echo(body: Echo) -> Echo:
    return body
