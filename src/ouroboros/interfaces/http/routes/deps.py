"""Dependencies every route uses: the caller (by role) and the services."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from ouroboros.interfaces.http.auth import require
from ouroboros.interfaces.http.errors import ErrorBody
from ouroboros.interfaces.http.services import Services
from ouroboros.interfaces.http.tokens import Principal, Role


async def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(services_of)]
Reader = Annotated[Principal, Depends(require(Role.read))]
Submitter = Annotated[Principal, Depends(require(Role.submit))]
Approver = Annotated[Principal, Depends(require(Role.approve))]
Admin = Annotated[Principal, Depends(require(Role.admin))]

#: Answers every authenticated route may give besides its own (for the OpenAPI schema).
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No valid bearer token"},
    403: {"model": ErrorBody, "description": "The token's role lacks the right"},
    429: {"model": ErrorBody, "description": "The token is over its rate limit (see the "
          "`Retry-After` header)"},
}
