"""Slack slash commands: ``POST /slack/commands`` (``/ouro proposals approve <id>`` …).

Slack cannot send a bearer token, so this route is not behind one: it is authenticated by
Slack's request signature instead (`capabilities/improve/proposals/slack.py`: v0
HMAC-SHA256 of ``v0:<timestamp>:<body>`` with the app's signing secret, the timestamp
within ``improve.chat.max_skew_s`` of now, a signature never accepted twice). The secret
is read from the environment variable ``improve.chat.signing_secret_env`` names
(``SLACK_SIGNING_SECRET``) when the server starts; without it every request is refused.
Only a verified request leases a runtime, under the server's decision lock, as an
approval through the API does; the reviewer is recorded as ``slack:<user_name>``.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from ouroboros.interfaces.http.errors import ErrorBody, error_json
from ouroboros.interfaces.http.services import Services

PATH = "/slack/commands"
router = APIRouter(tags=["chat"])
_HINT = "sign requests with the Slack app's signing secret (X-Slack-Signature, " \
        "X-Slack-Request-Timestamp); see docs/serve.md, 'Slack slash commands'"


@router.post(PATH, summary="A Slack slash command (signed by Slack, no bearer token)",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/x-www-form-urlencoded": {"schema": {"type": "object"}}}}},
             responses={401: {"model": ErrorBody, "description": "Unsigned, badly signed, "
                              "stale or replayed"},
                        400: {"model": ErrorBody, "description": "Not a form"}})
async def slash_command(request: Request) -> Response:
    from ouroboros.capabilities.improve.proposals.slack import handle_slash_command

    state = request.app.state.slack
    services: Services = request.app.state.services
    body = await request.body()  # InputGuard already capped it; the handler caps it lower
    headers = dict(request.headers)

    def work() -> Any:
        with contextlib.ExitStack() as stack:
            def loop() -> Any:  # made only once the request verified
                stack.enter_context(services.decisions)
                return stack.enter_context(services.lease()).loop()

            return handle_slash_command(body, headers, secret=state["secret"],
                                        now=time.time(), loop=loop,
                                        replays=state["replays"],
                                        max_skew_s=state["max_skew_s"])

    out = await run_in_threadpool(work)
    if out.status != 200:
        code = "unauthorized" if out.status == 401 else "bad_request"
        return JSONResponse(error_json(code, str(out.body.get("error", "refused")),
                                       _HINT if out.status == 401 else ""),
                            status_code=out.status)
    return JSONResponse(out.body)


def mount(app: FastAPI, services: Services) -> None:
    from ouroboros.capabilities.improve.proposals.slack import ReplayCache
    from ouroboros.kernel.settings import load_settings

    chat = load_settings(services.home).settings.improve.chat
    app.state.slack = {"secret": os.environ.get(chat.signing_secret_env, ""),
                       "max_skew_s": chat.max_skew_s,
                       "replays": ReplayCache(services.home / "improve" / "slack-seen.json")}
    app.include_router(router)
