"""`edgeag serve`: the web page and HTTP API (FastAPI under uvicorn), see ``edgeag.edge.server``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgeag.cli.common import err_console, handle_errors
from edgeag.cli.options import AnalyzerArgs, with_groups
from edgeag.errors import BadInputError, EdgeagError


@handle_errors
@with_groups(analyzer=AnalyzerArgs)
def serve(
    analyzer: AnalyzerArgs,
    host: Annotated[str, typer.Option(help="Address to listen on. The default is reachable from this machine only; "
                                      "0.0.0.0 opens it to your network (no authentication).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0 = any free port).")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Analyzers in the pool = images analysed in parallel "
                                         "(workers x threads should not exceed the CPU cores).")] = 2,
    max_upload_mb: Annotated[float, typer.Option(min=0.01, help="Largest accepted upload, in MB (larger: "
                                                 "413).")] = 10.0,
    max_side: Annotated[int, typer.Option(min=16, help="Largest accepted image width or height, in pixels.")] = 8192,
    upload_timeout: Annotated[float, typer.Option(min=0.1, help="Seconds an upload may send nothing before it is "
                                                  "refused (408): stalled or too slow clients.")] = 30.0,
    ssl_certfile: Annotated[Optional[Path], typer.Option(help="TLS certificate (PEM): serve HTTPS, which phone "
                                                         "browsers need for the camera on a non-localhost "
                                                         "address.")] = None,
    ssl_keyfile: Annotated[Optional[Path], typer.Option(help="TLS private key (PEM) for --ssl-certfile.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every request (uvicorn access log) and "
                                          "client-side faults (dropped or stalled uploads).")] = False,
) -> None:
    """Start the web page and HTTP API: POST /v1/analyze, GET /v1/model, /healthz, /docs."""
    _check_serve_installed()
    from edgeag.edge.server import ServerOptions, bind_socket, create_app, is_loopback, uvicorn_server

    _check_tls(ssl_certfile, ssl_keyfile)
    a = analyzer.options()
    if a.threads is None:
        a.threads = ServerOptions().analyzer.threads  # one LiteRT thread per analyzer by default
    # Bind first (a busy port is a clear error before seconds of model loading), then load the model once.
    sock = bind_socket(host, port)
    try:
        options = ServerOptions(analyzer=a, workers=workers, max_upload_bytes=int(max_upload_mb * 1024 * 1024),
                                max_side=max_side, upload_timeout=upload_timeout)
        server = uvicorn_server(create_app(options=options), log_level="info" if verbose else "warning",
                                access_log=verbose, ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
                                ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None)
        _announce(host, sock.getsockname()[1], "https" if ssl_certfile else "http", is_loopback(host),
                  f"{workers} analyzer(s) x {a.threads} thread(s)")
        server.run(sockets=[sock])  # Ctrl-C / SIGTERM: stop accepting, finish requests, close the analyzers
    finally:
        sock.close()
    err_console.print("stopped")


def _check_serve_installed() -> None:
    try:
        import fastapi  # noqa: F401
        import python_multipart  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise EdgeagError(f"`edgeag serve` needs {exc.name}: pip install 'edgeag[serve]'", 2) from None


def _check_tls(certfile: Optional[Path], keyfile: Optional[Path]) -> None:
    if (certfile is None) != (keyfile is None):
        raise BadInputError("--ssl-certfile and --ssl-keyfile go together")
    for f in (certfile, keyfile):
        if f is not None and not f.is_file():
            raise BadInputError(f"file not found: {f}")


def _announce(host: str, port: int, scheme: str, loopback: bool, pool: str) -> None:
    """The address on stderr for people, and alone on stdout for scripts."""
    shown = "localhost" if loopback else ("<this-machine's-address>" if host in ("0.0.0.0", "::") else host)
    if not loopback:
        err_console.print(f"[yellow]warning:[/] listening on {host}: anyone who can reach this machine can "
                          "use this server (no authentication). Use the default --host 127.0.0.1 to keep it local.")
    err_console.print(f"edgeag serve: [bold]{scheme}://{shown}:{port}/[/]  (API docs at /docs; {pool}; Ctrl-C to stop)")
    typer.echo(f"{scheme}://{'127.0.0.1' if loopback else host}:{port}", err=False)
