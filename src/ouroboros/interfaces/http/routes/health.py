"""``GET /health`` (no token) and ``GET /whoami``."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel

from ouroboros.interfaces.http.routes.deps import AUTH_RESPONSES, Reader

router = APIRouter(tags=["server"])


class Health(BaseModel):
    status: Literal["ok"]
    version: str


class Identity(BaseModel):
    name: str
    role: str
    key: str | None


@router.get("/health", response_model=Health, summary="Liveness (no token needed)")
def health(request: Request) -> Health:
    return Health(status="ok", version=request.app.version)


@router.get("/whoami", response_model=Identity, responses=AUTH_RESPONSES,
            summary="The calling token's name and role")
def whoami(who: Reader) -> Identity:
    return Identity(name=who.name, role=who.role.value, key=who.key)
