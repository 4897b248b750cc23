"""The table `edgeag predict` prints: a sink of the run loop that collects records and prints them at the end."""

from __future__ import annotations

from pathlib import Path

from edgeag.edge.sinks import Sink


class TableSink(Sink):
    """One row per face (or per image without a face, or that could not be read), printed on stdout by ``close()``."""

    def __init__(self, ethnicity: bool = False) -> None:
        self.ethnicity = ethnicity
        self.records: list[dict] = []

    def write(self, record: dict, image) -> bool:
        self.records.append(record)
        return True

    def close(self) -> None:
        print_table(self.records, self.ethnicity)

    def abort(self) -> None:
        pass  # a failed run prints its error, not half a table


def _num(v: float | None, fmt: str) -> str:
    """A number for the table, '?' when unknown (null)."""
    return "?" if v is None else fmt.format(v)


def print_table(records: list[dict], ethnicity: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(show_lines=False)
    for col in ("file", "#", "box x,y,w,h", "score", "age", "gender"):
        t.add_column(col, justify="left" if col in ("file", "gender", "box x,y,w,h") else "right",
                     overflow="fold" if col == "file" else "ellipsis")
    if ethnicity:
        t.add_column("ethnicity")
    blank = [""] if ethnicity else []
    for r in records:
        name = Path(r["file"]).name
        if "error" in r:
            t.add_row(name, "", f"[red]{r['error']}[/]", "", "", "", *blank)
            continue
        if not r["faces"]:
            t.add_row(name, "0", "[dim]no face[/]", "", "", "", *blank)
        for i, f in enumerate(r["faces"], 1):
            row = [name if i == 1 else "", str(i), ",".join(str(v) for v in f["box"]), f"{f['score']:.2f}",
                   _num(f["age"], "{:.0f}"), f"{f['gender'] or '?'} ({_num(f['gender_confidence'], '{:.0%}')})"]
            if ethnicity:
                row.append(f"{f['ethnicity'] or '?'} ({_num(f['ethnicity_confidence'], '{:.0%}')})")
            t.add_row(*row)
    Console().print(t)
