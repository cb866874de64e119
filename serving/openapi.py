"""What the worker and the coordinator answer, as their OpenAPI schemas state it.

A client (or a schema-driven fuzz) reads every status a service can return, and the shape of its
body, from ``/openapi.json``. Here are the refusals both services share, and the worker's answers,
which it builds as plain JSON for speed and so cannot declare as response models. Nothing here
changes what is answered.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field


class Problem(BaseModel):
    """A refusal in one sentence."""

    detail: str


class FieldError(BaseModel):
    loc: list[str | int] = Field(description='where the bad value is, e.g. ["body", "lines"]')
    type: str
    msg: str = Field(description="the field and what is wrong with it, in one sentence")
    input: Any = Field(default=None, description="the value, when it is short enough to show")


class Invalid(BaseModel):
    """A request refused before any work: each bad field named, or one sentence naming it."""

    detail: list[FieldError] | str
    error_count: int | None = None


def problem(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description}


NOT_JSON = {400: problem("the body is not JSON text: it is not UTF-8")}
TOO_LARGE = {413: {"description": "the body is over the service's limit; refused unread",
                   "content": {"text/plain": {"schema": {"type": "string"}}}}}
INVALID = {422: {"model": Invalid, "description": "a field is invalid; the answer names it"}}
AUTH = {401: problem("no `Authorization: Bearer <token>` header, or the wrong token"),
        403: problem("the endpoint is off: the service was started without WORKER_TOKEN")}


# --- the worker's answers, as /predict and /health send them (built as plain JSON there, for speed) ---
class SystemPrediction(BaseModel):
    version: str
    predicted_points: float = Field(description="the market's predicted outcome (points, rebounds, ...)")
    recommendation: Literal["OVER", "UNDER", "PASS"] = Field(description="derived from the probabilities below")
    p_over: float | None = Field(description="P(outcome > line); null where the row has no line")
    p_push: float | None = Field(description="P(outcome == line): non-zero on a whole-number line only")
    p_under: float | None = Field(description="P(outcome < line)")
    confidence: float | None = Field(description="P of the side called once a push is refunded; null on PASS")


class Prediction(BaseModel):
    player_id: int | None
    game_date: dt.date | None
    game_id: str | None
    line: float | None
    systems: dict[str, SystemPrediction] = Field(description="every system that answered")
    system: str | None = Field(default=None, description="the best answering system, which the fields below repeat")
    predicted_points: float | None = None
    recommendation: Literal["OVER", "UNDER", "PASS"] | None = None
    p_over: float | None = None
    p_push: float | None = None
    p_under: float | None = None
    confidence: float | None = None


class Missing(BaseModel):
    player_id: int
    game_date: dt.date
    reason: str


class Predictions(BaseModel):
    market: str = Field(description="the market predicted (the request's, default points)")
    predictions: list[Prediction]
    missing: list[Missing] = Field(description="asked-for player-games without a feature row")
    errors: dict[str, str] = Field(description="systems that could not answer, and why")


class SystemColumns(BaseModel):
    version: str
    predicted_points: list[float]
    recommendation: list[Literal["OVER", "UNDER", "PASS"]]
    p_over: list[float | None]
    p_push: list[float | None]
    p_under: list[float | None]
    confidence: list[float | None]


class Columns(BaseModel):
    """The answer to a ``table`` alone: one list per system, in the table's row order."""

    columns: dict[str, SystemColumns]
    errors: dict[str, str]


class WorkerHealth(BaseModel):
    status: Literal["ok", "degraded", "unavailable"]
    systems: list[str] | None = Field(default=None, description="the systems serving")
    errors: dict[str, str] | None = Field(default=None, description="what does not serve as it should")
    reason: str | None = Field(default=None, description="why nothing serves (503)")


PREDICT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Predictions | Columns}, **NOT_JSON, **TOO_LARGE, **INVALID,
    503: problem("no system can predict, or the feature store cannot be read now")}
HEALTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": WorkerHealth}, 503: {"model": WorkerHealth, "description": "nothing can be served"}}
