"""`edgeag train`, `edgeag soup` and `edgeag audit-labels`: the training side (needs edgeag[train])."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from edgeag.cli.common import err_console, handle_errors, require_tf
from edgeag.cli.options import ArchitectureArgs, CacheDir, Data, ModelArg, ScheduleArgs, Seed, SplitFile, with_groups
from edgeag.errors import EXIT_INTERRUPTED


@handle_errors
@with_groups(arch=ArchitectureArgs, schedule=ScheduleArgs)
def train(
    data: Data,
    out: Annotated[Path, typer.Option("--out", help="Folder for the model, config, history, metrics and plots.")],
    arch: ArchitectureArgs, schedule: ScheduleArgs,
    split_file: SplitFile = None,
    exclude: Annotated[Optional[Path], typer.Option(
        "--exclude", help="Ids left out of training (a list, or a CSV with an id column such as "
        "`edgeag audit-labels`' suspects.csv).")] = None,
    margin: Annotated[float, typer.Option(help="Crop margin around the detector box (fraction of its side).")] = 0.1,
    cache_dir: CacheDir = None,
    init_from: Annotated[Optional[Path], typer.Option(
        "--init-from", help="A finished run's folder, or a model file written by `edgeag quantize` (such as "
        "the bundled edge/models/edgeag_default.tflite): start from its weights with a new warm-up and cosine "
        "cycle (same model settings; the input size may differ).")] = None,
) -> None:
    """Train an age/gender/ethnicity model (needs edgeag\\[train]).

    Resumable: an interrupted run (Ctrl-C, a killed job) keeps a per-epoch backup in OUT/backup;
    the same command again continues from the last finished epoch. --init-from trains on from a
    finished run (a warm restart) into a new OUT.
    """
    from edgeag.train.fit import train as run_train

    require_tf()
    tcfg = schedule.train_config(init_from=str(init_from) if init_from else None,
                                 exclude=str(exclude) if exclude else None)
    m = run_train(data, out, split_file=split_file, model_cfg=arch.model_config(), train_cfg=tcfg,
                  crop_margin=margin, cache_dir=cache_dir)
    o = m["overall"]
    if m["training"]["interrupted"]:
        # Everything up to the best epoch is written, but a script must not take this for a finished run.
        err_console.print(f"[yellow]interrupted[/]: best epoch so far written to {out} (val age MAE "
                          f"{o['age_mae']:.2f}); run the same command again to resume")
        raise typer.Exit(EXIT_INTERRUPTED)
    err_console.print(f"[green]done[/]: val age MAE {o['age_mae']:.2f}, CS@5 {100 * o['age_cs5']:.1f}%, "
                      f"gender {100 * o['gender_accuracy']:.1f}%, ethnicity {100 * o['ethnicity_accuracy']:.1f}% "
                      f"-> {out}")


@handle_errors
def soup(
    runs: Annotated[List[Path], typer.Argument(metavar="RUN", help="Two or more `edgeag train` folders fine-tuned "
                                               "from one run; after the first, also the .tflite of that ancestor "
                                               "(`edgeag quantize`'s int8 file).")],
    data: Data,
    out: Annotated[Path, typer.Option("--out", help="Folder for the averaged model (as written by train).")],
    split_file: SplitFile = None,
    seed: Seed = 0,
    cache_dir: CacheDir = None,
) -> None:
    """Average the weights of runs fine-tuned from one ancestor into one model (a model soup; needs edgeag\\[train]).

    Same cost per face as one of them; the first run sets the input size. Batch norm is re-estimated on the
    train split of --data, the soup evaluated on val.
    """
    from edgeag.train.soup import soup as run_soup

    require_tf()
    m = run_soup(runs, data, out, split_file=split_file, seed=seed, cache_dir=cache_dir)
    for ingredient, o in m["ingredients"].items():
        if o:
            err_console.print(f"  {ingredient}: val age MAE {o['age_mae']:.3f}, gender {100 * o['gender_accuracy']:.2f}%, "
                              f"ethnicity {100 * o['ethnicity_accuracy']:.2f}%", highlight=False)
    o = m["overall"]
    err_console.print(f"[green]soup[/]: val age MAE {o['age_mae']:.3f}, CS@5 {100 * o['age_cs5']:.1f}%, "
                      f"gender {100 * o['gender_accuracy']:.2f}%, ethnicity {100 * o['ethnicity_accuracy']:.2f}% "
                      f"-> {out}")


@handle_errors
def audit_labels(
    model: ModelArg,
    data: Data,
    out: Annotated[Path, typer.Option("--out", help="Folder for suspects.csv and the contact sheet suspects.png.")],
    split: Annotated[str, typer.Option(help="train, val, test or all.")] = "train",
    split_file: SplitFile = None,
    min_contradiction: Annotated[float, typer.Option(
        "--min-contradiction", min=0.0, max=1.0,
        help="Only contradictions with |2 p(female) - 1| above this.")] = 0.8,
    min_age: Annotated[float, typer.Option(help="Only faces labelled this age or older (children's faces carry "
                                           "little gender signal).")] = 13,
    seed: Seed = 0,
) -> None:
    """List faces whose gender label the model confidently contradicts: likely label errors, to look at
    (suspects.png) and to leave out of training (`edgeag train --exclude OUT/suspects.csv`)."""
    from edgeag.train.audit import audit_labels as run_audit

    s = run_audit(model, data, out, split=split, split_file=split_file, min_confidence=min_contradiction,
                  min_age=min_age, seed=seed)
    err_console.print(f"{s['suspects']} of {s['checked']} faces aged {min_age:g}+ in split {split!r}: gender label "
                      f"contradicted with confidence > {min_contradiction:g} -> {out}/suspects.csv, suspects.png",
                      highlight=False)
