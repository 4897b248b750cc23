"""Starting the HTTP server: the listening socket, the uvicorn server and a background-thread server for
tests and benchmarks."""

from __future__ import annotations

import threading
import time

from fastapi import FastAPI

from edgeag.edge.server_intake import MULTIPART_SLACK


def is_loopback(host: str) -> bool:
    """True for localhost / 127.x / ::1: reachable from this machine only."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_socket(host: str, port: int):
    """A listening TCP socket (port 0 picks a free one). Raises BadInputError if the address is unusable."""
    import socket

    from edgeag.errors import BadInputError

    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM,
                                                          flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as exc:
        if getattr(exc, "errno", None) == 98:
            raise BadInputError(f"port {port} on {host} is already in use: choose another with --port") from None
        raise BadInputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def uvicorn_server(app: FastAPI, *, log_level: str = "warning", access_log: bool = False,
                   ssl_certfile: str | None = None, ssl_keyfile: str | None = None):
    """A uvicorn Server for ``app`` with limits matching the app's (WebSocket frames up to the upload limit)."""
    import uvicorn

    max_upload_bytes = app.state.service.options.max_upload_bytes
    config = uvicorn.Config(app, log_level=log_level, access_log=access_log, lifespan="on",
                            log_config=_log_config(log_level),
                            ws_max_size=max_upload_bytes + MULTIPART_SLACK,
                            timeout_graceful_shutdown=10, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile)
    return uvicorn.Server(config)


def _log_config(level: str) -> dict:
    """uvicorn's logging set-up plus the ``edgeag`` loggers, same format and level (one line per event)."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["edgeag"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config


class ServerThread:
    """Serve ``app`` on 127.0.0.1 in a background thread (tests, benchmarks).

        with ServerThread(create_app()) as url:
            httpx.get(url + "/healthz")
    """

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sock = bind_socket(host, port)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self.server = uvicorn_server(app)
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True  # graceful: drain requests, then the lifespan closes the analyzers
        self._thread.join(timeout=30)
