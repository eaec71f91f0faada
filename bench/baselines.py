"""Baseline servers for bench/ingest.py, run side by side with the exporter on the same load.

* ``pydantic_app``: the obvious FastAPI implementation, parsing the batch into pydantic models.
* ``read_only_app``: reads the body and answers; the ceiling for any parser on this stack.

Benchmark-only code: never imported by the exporter.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from pydantic import BaseModel


class Event(BaseModel):
    id: str
    features: dict[str, float | str | bool | None]
    prediction: int | float | str | bool
    timestamp: float | str | None = None
    label: int | float | str | bool | None = None
    score: float | None = None
    probabilities: dict[str, float] | None = None


class Batch(BaseModel):
    model: str
    model_version: str | None = None
    events: list[Event]


pydantic_app = FastAPI()


@pydantic_app.post("/v1/predictions")
async def parse_with_pydantic(batch: Batch) -> dict[str, int]:
    return {"accepted": len(batch.events)}


read_only_app = FastAPI()


@read_only_app.post("/v1/predictions")
async def read_only(request: Request) -> dict[str, int]:
    body = await request.body()
    return {"accepted": len(body)}
