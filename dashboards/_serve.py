"""Serving the dashboard: bind the address first (so a taken port or a bad host is a clear error, not a log
line), then run uvicorn on that socket."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

from dashboards._app import LOCAL_HOSTS, create_app


class DashboardError(ValueError):
    """The dashboard cannot serve where it was asked to (bad host, port taken, ...)."""


def _bind(host: str, port: int) -> socket.socket:
    if not 0 <= port <= 65535:
        raise DashboardError(f"--port {port} is not a TCP port; allowed: 0..65535 (0: any free port)")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise DashboardError(f"--host {host!r} is not an address of this machine: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise DashboardError(f"cannot serve on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def is_loopback(host: str) -> bool:
    """Whether ``host`` is only reachable from this machine (a name is resolved)."""
    try:
        return ipaddress.ip_address(socket.getaddrinfo(host, None)[0][4][0]).is_loopback
    except (socket.gaierror, ValueError):
        return False


def serve(
    store_url: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the dashboard over ``store_url`` until interrupted; ``on_ready(url)`` once it listens.

    Raises ResultsError (the store cannot be read) or DashboardError (the address cannot be served)."""
    import uvicorn

    local = is_loopback(host)
    app = create_app(store_url, allowed_hosts=[*LOCAL_HOSTS, host] if local else ["*"])
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=3)
    )
    if on_ready is not None:
        on_ready(f"http://{shown}:{bound_port}/")
    server.run(sockets=[sock])
