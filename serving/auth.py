"""The bearer token that guards the endpoints which change what is served or stored."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Header, HTTPException


def bearer_guard(token: str | None, service: str) -> Callable[..., None]:
    """A FastAPI dependency: 403 when no token is configured (the endpoint is off), 401 when the
    request's ``Authorization: Bearer ...`` does not match it (compared in constant time)."""

    def check(authorization: Annotated[str | None, Header()] = None) -> None:
        if not token:
            raise HTTPException(403, f"disabled: start the {service} with WORKER_TOKEN set")
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "missing or wrong bearer token")

    return check
