"""The bearer token that guards the endpoints which change what is served or stored."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Header, HTTPException


def bearer_guard(token: str | None, service: str) -> Callable[..., None]:
    """A FastAPI dependency: 403 when no token is configured (the endpoint is off), 401 when the
    request's ``Authorization`` is not ``Bearer <token>`` (the scheme is required, so a token pasted
    into the wrong header form is refused rather than guessed at; compared in constant time)."""

    def check(authorization: Annotated[str | None, Header()] = None) -> None:
        if not token:
            raise HTTPException(403, f"disabled: start the {service} with WORKER_TOKEN set")
        scheme, _, given = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    return check
