"""The bearer token that guards the endpoints which change what is served or stored."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Header, HTTPException, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

# The scheme as the OpenAPI schema states it; the check below reads the header itself, so a token in
# the wrong form gets the same one-sentence 401 as a wrong token.
BEARER = HTTPBearer(auto_error=False, scheme_name="bearer", description="the service's WORKER_TOKEN")


def bearer_guard(token: str | None, service: str) -> Callable[..., None]:
    """A FastAPI dependency: 403 when no token is configured (the endpoint is off), 401 when the
    request's ``Authorization`` is not ``Bearer <token>`` (the scheme is required, so a token pasted
    into the wrong header form is refused rather than guessed at; compared in constant time).
    Called with the header alone, it checks a request before its body is read."""

    def check(authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
              _documented: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None) -> None:
        if not token:
            raise HTTPException(403, f"disabled: start the {service} with WORKER_TOKEN set")
        scheme, _, given = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    return check
