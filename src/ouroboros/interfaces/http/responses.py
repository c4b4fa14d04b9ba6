"""JSON answers as prepared bytes (orjson): routes that already hold a JSON-ready value
skip FastAPI's second validation and encoding pass."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import Response


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> Response:
    body = orjson.dumps(data, default=str, option=orjson.OPT_NON_STR_KEYS)
    return Response(body, status_code=status, headers=headers, media_type="application/json")
