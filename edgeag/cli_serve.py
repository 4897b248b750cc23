"""`edgeag serve`: the web page and HTTP API (FastAPI under uvicorn), see ``edgeag.edge.server``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgeag.cli_common import MIN_FACE_OPTION, MIN_GENDER_CONFIDENCE_HELP, Detector, detector_option, err_console, \
    handle_errors


@handle_errors
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on. The default is reachable from this machine "
                             "only; 0.0.0.0 opens it to your network (no authentication)."),
    port: int = typer.Option(8000, help="TCP port (0 = any free port)."),
    model: Optional[Path] = typer.Option(None, "--model", help="Classifier .tflite (default: the bundled model)."),
    threads: int = typer.Option(1, min=1, help="LiteRT threads per analyzer."),
    workers: int = typer.Option(2, min=1, help="Analyzers in the pool = images analysed in parallel "
                                "(workers x threads should not exceed the CPU cores)."),
    detector: Detector = detector_option(),
    min_confidence: float = typer.Option(0.5, min=0.0, max=1.0, help="Face detector score threshold."),
    min_gender_confidence: float = typer.Option(0.0, min=0.0, max=1.0, help=MIN_GENDER_CONFIDENCE_HELP),
    min_face: int = MIN_FACE_OPTION,
    max_upload_mb: float = typer.Option(10.0, min=0.01, help="Largest accepted upload, in MB (larger: 413)."),
    max_side: int = typer.Option(8192, min=16, help="Largest accepted image width or height, in pixels."),
    upload_timeout: float = typer.Option(30.0, min=0.1, help="Seconds an upload may send nothing before it is "
                                         "refused (408): stalled or too slow clients."),
    ssl_certfile: Optional[Path] = typer.Option(None, help="TLS certificate (PEM): serve HTTPS, which phone "
                                                "browsers need for the camera on a non-localhost address."),
    ssl_keyfile: Optional[Path] = typer.Option(None, help="TLS private key (PEM) for --ssl-certfile."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every request (uvicorn access log) and "
                                 "client-side faults (dropped or stalled uploads)."),
) -> None:
    """Start the web page and HTTP API: POST /v1/analyze, GET /v1/model, /healthz, /docs."""
    try:
        import fastapi  # noqa: F401
        import python_multipart  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        from edgeag.errors import EdgeagError

        raise EdgeagError(f"`edgeag serve` needs {exc.name}: pip install 'edgeag[serve]'", 2) from None
    from edgeag.edge.analyzer import FaceAnalyzerOptions
    from edgeag.edge.server import ServerOptions, bind_socket, create_app, is_loopback, uvicorn_server
    from edgeag.errors import BadInputError

    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise BadInputError("--ssl-certfile and --ssl-keyfile go together")
    for f in (ssl_certfile, ssl_keyfile):
        if f is not None and not f.is_file():
            raise BadInputError(f"file not found: {f}")

    # Bind first (a busy port is a clear error before seconds of model loading), then load the model once.
    sock = bind_socket(host, port)
    try:
        analyzer = FaceAnalyzerOptions(model_path=model, threads=threads, detector=detector.value,
                                       min_confidence=min_confidence, min_gender_confidence=min_gender_confidence,
                                       min_face=min_face)
        options = ServerOptions(analyzer=analyzer, workers=workers, max_upload_bytes=int(max_upload_mb * 1024 * 1024),
                                max_side=max_side, upload_timeout=upload_timeout)
        app = create_app(options=options)
        server = uvicorn_server(app, log_level="info" if verbose else "warning", access_log=verbose,
                                ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
                                ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None)
        actual = sock.getsockname()[1]
        scheme = "https" if ssl_certfile else "http"
        shown = "localhost" if is_loopback(host) else ("<this-machine's-address>" if host in ("0.0.0.0", "::")
                                                       else host)
        if not is_loopback(host):
            err_console.print(f"[yellow]warning:[/] listening on {host}: anyone who can reach this machine can "
                              "use this server (no authentication). Use the default --host 127.0.0.1 to keep it local.")
        err_console.print(f"edgeag serve: [bold]{scheme}://{shown}:{actual}/[/]  (API docs at /docs; "
                          f"{workers} analyzer(s) x {threads} thread(s); Ctrl-C to stop)")
        typer.echo(f"{scheme}://{'127.0.0.1' if is_loopback(host) else host}:{actual}", err=False)
        server.run(sockets=[sock])  # Ctrl-C / SIGTERM: stop accepting, finish requests, close the analyzers
    finally:
        sock.close()
    err_console.print("stopped")
