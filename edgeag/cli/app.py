"""The ``edgeag`` command: one grammar over the life cycle (train, quantize, evaluate, run, serve, benchmark).

One module per verb group (train.py: train, soup, audit-labels; quantize.py; evaluate.py; run.py: run,
predict; serve.py; benchmark.py; report.py); options shared by several commands are declared once in
options.py. Each command is thin: it parses options and calls library functions, imported inside it.
"""

from __future__ import annotations

import typer

from edgeag._version import __version__
from edgeag.cli.benchmark import benchmark
from edgeag.cli.evaluate import evaluate
from edgeag.cli.quantize import quantize
from edgeag.cli.report import report
from edgeag.cli.run import predict, run
from edgeag.cli.serve import serve
from edgeag.cli.train import audit_labels, soup, train

app = typer.Typer(
    name="edgeag",
    help="Face age and gender estimation on edge devices: train, quantize, evaluate, run, serve, benchmark.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgeag {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """edgeag command line."""


app.command()(train)
app.command()(soup)
app.command("audit-labels")(audit_labels)
app.command()(evaluate)
app.command()(quantize)
app.command(help="Analyse frames from a camera, video, stream or images: boxes, age, gender, live.")(run)
app.command(help="Analyse photos: a table, or one JSON record per image with --json FILE|- (as `run --image`).")(
    predict)
app.command(help="Start the web interface and HTTP API (needs edgeag\\[serve]).")(serve)
app.command(help="Measure per-stage latency, FPS, size and memory on this device.")(benchmark)
app.command(help="Summarise audience events (files or MQTT): table, CSVs, PNG plots, HTML page.")(report)


def main() -> None:
    app()
