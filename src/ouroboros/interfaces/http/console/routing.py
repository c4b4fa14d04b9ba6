"""How console routes answer when something goes wrong, whatever the route.

`ConsoleRoute` is the route class of every console router: a route's errors become an
HTML page (or, for an htmx request, a fragment the page shows in place), a request
without a session goes to the login form (a GET) or is refused (anything else), and every
answer carries the console's security headers. Each console module's router must use it:
FastAPI keeps a route's own class when routers are combined.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

log = logging.getLogger("ouroboros.http.console")

_TITLES = {400: "Bad request", 403: "Refused", 404: "Not found", 405: "Not allowed",
           409: "Conflict", 413: "Too large", 415: "Unsupported", 422: "Invalid input",
           503: "Unavailable"}


class ConsoleRoute(APIRoute):
    """A console route: its errors become HTML pages (or fragments, for htmx), a missing
    session becomes the login form, and every answer carries the console's headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def console_handler(request: Request) -> Response:
            from ouroboros.interfaces.http.console.auth import NotLoggedIn, PageError, to_login
            from ouroboros.interfaces.http.console.rendering import secure
            from ouroboros.interfaces.http.errors import ApiError
            from ouroboros.kernel import OuroError

            try:
                return secure(await handler(request))
            except NotLoggedIn as e:
                if request.method == "GET":
                    return to_login(request, e.why)
                return _error(request, PageError(
                    403, "Not logged in", "this form needs a live session: nothing was done",
                    "log in and try again"))
            except PageError as e:
                return _error(request, e)
            except RequestValidationError as e:
                where = "; ".join(".".join(str(p) for p in err.get("loc", ())[1:]) or "input"
                                  for err in e.errors()[:3])
                return _error(request, PageError(400, "Bad request",
                                                 f"not a valid value: {where}"))
            except ApiError as e:
                return _error(request, PageError(e.status, _TITLES.get(e.status, "Error"),
                                                 e.message, e.hint))
            except HTTPException as e:
                return _error(request, PageError(e.status_code,
                                                 _TITLES.get(e.status_code, "Error"),
                                                 str(e.detail)))
            except OuroError as e:
                from ouroboros.interfaces.http.errors import status_of

                status, _ = status_of(e)
                return _error(request, PageError(status, _TITLES.get(status, "Error"),
                                                 e.message, e.hint))
            except Exception:
                log.exception("console: unhandled error on %s %s", request.method,
                              request.url.path)
                return _error(request, PageError(500, "Something broke",
                                                 "the server failed to handle this request",
                                                 "the server's log has the details"))

        return console_handler


def _error(request: Request, e: Any) -> Response:
    from ouroboros.interfaces.http.console.rendering import render

    context = {"status": e.status, "title": e.title, "message": e.message, "hint": e.hint}
    if request.headers.get("hx-request"):  # shown at the top of the element it targets
        return render("_error.html", context, e.status, {"HX-Reswap": "afterbegin"})
    viewer = None
    try:
        from ouroboros.interfaces.http.console.auth import viewer as find_viewer

        viewer = find_viewer(request)
    except Exception:  # an error page shows even without a session
        viewer = None
    return render("error.html", {**context, "viewer": viewer, "flash": [], "nav": ""},
                  e.status)
