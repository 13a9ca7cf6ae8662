"""The read-only web dashboard over an hwnas store and its JSON API (``hwnas dashboard``).

It reads through the read-only results layer (``search.results``): it never writes the store and never
loads torch. ``create_app(url)`` is the ASGI app (for tests and other servers); ``serve(url, ...)`` runs it.
"""

from dashboards._app import create_app
from dashboards._serve import DashboardError, is_loopback, serve

__all__ = ["DashboardError", "create_app", "is_loopback", "serve"]
