"""Pages out: the Jinja environment, the security headers, the static files.

Every console response, a page, a fragment, a redirect or an error, leaves with the same
headers (`SECURITY_HEADERS`): a Content-Security-Policy that allows scripts, styles and
images from the server itself only (no inline script or style, no ``eval``, no frames,
forms posting only back to the server), and no caching of pages that show the
workspace. Templates autoescape everything; `markup.finalize` makes hidden characters
visible in every ``{{ … }}``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from ouroboros.interfaces.http.console import markup, views

STATIC_PREFIX = "/static/console"

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
NO_STORE = {"Cache-Control": "no-store"}

_PACKAGE = resources.files("ouroboros.interfaces.http.console")


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".svg": "image/svg+xml"}


def _assets() -> dict[str, Asset]:
    """The static files, read once: served by name from this table only (no path is ever
    joined from a request)."""
    out = {}
    for entry in _PACKAGE.joinpath("static").iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if suffix in _TYPES:
            body = entry.read_bytes()
            out[entry.name] = Asset(body, _TYPES[suffix], hashlib.sha256(body).hexdigest()[:16])
    return out


ASSETS = _assets()


def asset_url(name: str) -> str:
    """A static file's URL, versioned by its content (cached for a year safely)."""
    return f"{STATIC_PREFIX}/{name}?v={ASSETS[name].etag}"


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(_PACKAGE.joinpath("templates"))),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined, finalize=markup.finalize, trim_blocks=True,
        lstrip_blocks=True)
    env.filters.update(markdown=markup.markdown, clip=markup.clip, pretty=markup.pretty_json,
                       diff_lines=markup.diff_lines, short=views.short, when=views.when,
                       ms=_ms, number=_number)
    env.globals.update(asset=asset_url)
    return env


def _ms(value: Any) -> str:
    return "–" if value is None else f"{float(value):.2f} ms"


def _number(value: Any, digits: int = 3) -> str:
    """Numbers people read: ``1,684``, ``17.8``, ``0.107`` (``–`` for none)."""
    if value is None or isinstance(value, bool):
        return "–" if value is None else str(value)
    number = float(value)
    if number.is_integer() and abs(number) < 1e15:
        return f"{int(number):,}"
    if abs(number) >= 10 ** digits:
        return f"{number:,.0f}"
    return f"{number:.{digits}g}"


templates = _environment()


def render(name: str, context: dict[str, Any], status: int = 200,
           headers: dict[str, str] | None = None) -> HTMLResponse:
    """A template as an HTML response with the console's headers."""
    html = templates.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status,
                        headers={**SECURITY_HEADERS, **NO_STORE, **(headers or {})})


def secure(response: Response) -> Response:
    """Add the console's headers to a response made elsewhere (redirects, errors)."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Cache-Control", "no-store")
    return response
