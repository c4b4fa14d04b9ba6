"""The service layer over HTTP: the API, the OTLP receiver and scheduled work (``ouro serve``).

Beside the CLI, and like it without logic of its own: routes call the capability
functions the CLI calls. ``create_app(home)`` builds the FastAPI app; ``server.serve``
runs it. See docs/serve.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ouroboros.interfaces.http.app import ServerSettings, create_app

__all__ = ["ServerSettings", "create_app"]


def __getattr__(name: str) -> Any:
    # FastAPI is imported only by whoever builds the app (`ouro token` never does).
    if name in __all__:
        from ouroboros.interfaces.http import app

        return getattr(app, name)
    raise AttributeError(name)
