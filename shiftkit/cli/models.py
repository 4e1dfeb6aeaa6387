"""``shiftkit models``: the arithmetic of candidate CNNs, per layer, and their cost on this device.

The library is :mod:`shiftkit.training.arch`; this module parses, prints the tables (rich), and with
``--out`` writes ``models.json`` and ``models.png`` (cost, and a run's measured error, against
multiply-adds).
"""

from __future__ import annotations

import math
from pathlib import Path

import typer

from shiftkit.core.console import console
from shiftkit.core.errors import ConfigError, InputPathError

MODELS_HELP = """For each model NAME (a timm model name, or [bold]lenet5[/], a LeNet-5-like reference), one row
per convolution and pooling it runs: input and output size by the formula
floor((n + 2p - d(f - 1) - 1) / s) + 1 (the textbook (n + 2p - f)/s + 1 with dilation d), carried
from the input size alone and checked against a real forward pass (a mismatch is marked [red]x[/]
and counted, never hidden); the filters f x f x n_c and how many; weights and biases; multiply-adds;
the receptive field in input pixels. Then, per model: parameters by formula against the module's own
count (timm's), multiply-adds per image, the smallest input it accepts (by the formula, checked by
forward passes), and training and inference images/s measured on this device at --img-size
(about --seconds each; --no-speed skips it). Weights are random (nothing is downloaded).

Without NAME: train.model and the next larger candidates by multiply-adds. --out DIR writes
models.json and models.png (images/s against multiply-adds; with --metrics NAME=metrics.json of a
run trained with NAME, its train and dev error against multiply-adds).

  shiftkit models resnet10t resnet50 --img-size 224
  shiftkit models lenet5 --img-size 32 --channels 1 --classes 10 --no-speed
"""


def _size(v: tuple[int, int] | None) -> str:
    if v is None:
        return "?"
    return f"{v[0]}" if v[0] == v[1] else f"{v[0]}x{v[1]}"


def _rf(v: float) -> str:
    return "global" if math.isinf(v) else ("?" if math.isnan(v) else f"{v:.0f}")


def _si(n: float) -> str:
    for unit, k in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= k:
            return f"{n / k:.2f} {unit}"
    return f"{n:.0f}"


def _pad(p: tuple[int, int, int, int]) -> str:
    return str(p[0]) if len(set(p)) == 1 else f"{p[0]}+{p[1]},{p[2]}+{p[3]}"


def layer_table(a):
    """The rich table of one model's convolutions and poolings."""
    from rich.table import Table

    t = Table(title=f"{a.name} at {a.img_size} px, {a.channels} channel(s): {len(a.layers)} conv/pool layers "
              "(n -> out by the formula; = where the forward pass agrees)", title_justify="left")
    for col in ("layer", "op", "n -> out", "forward", "filters f x f x n_c (x k)", "s/p/d", "weights + biases",
                "mult-adds", "RF"):
        t.add_column(col, justify="left" if col in ("layer", "op", "filters f x f x n_c (x k)") else "right",
                     overflow="fold")
    for la in a.layers:
        k = f"{la.kernel[0]}x{la.kernel[1]}"
        filt = (f"{k}x{la.in_channels // la.groups} (x{la.out_channels})" if la.op == "conv" else k)
        if la.op == "conv" and la.groups > 1:
            filt += f" g{la.groups}"
        ok = "[green]=[/]" if la.matches else "[red]x[/]"
        t.add_row(la.name, la.op, f"{_size(la.in_formula)} -> {_size(la.out_formula)}",
                  f"{_size(la.out_measured)} {ok}", filt,
                  f"{_size(la.stride)}/{_pad(la.padding)}/{_size(la.dilation)}",
                  f"{la.weights:,} + {la.biases:,}" if la.op == "conv" else "0", _si(la.macs), _rf(la.receptive_field))
    return t


def _rate(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f}"


def summary_table(archs):
    from rich.table import Table

    t = Table(title="models: cost at the input size", title_justify="left")
    for col in ("model", "px", "params (formula)", "timm's count", "mult-adds", "final map", "smallest input",
                "formula = forward", "train img/s", "infer img/s"):
        t.add_column(col, justify="left" if col == "model" else "right", overflow="fold")
    for a in archs:
        same = "[green]yes[/]" if a.params == a.params_torch else "[red]NO[/]"
        fw = "[green]all[/]" if not a.mismatches else f"[red]{a.mismatches} differ[/]"
        small = f"{a.min_input} px" if a.min_input else "?"
        if "DISAGREE" in a.min_input_how:
            small += " [red](forward disagrees)[/]"
        t.add_row(a.name, str(a.img_size), f"{a.params:,}", f"{a.params_torch:,} {same}", _si(a.macs),
                  _size(a.final_map), small, fw, _rate(a.train_img_s), _rate(a.infer_img_s))
    return t


def _metrics(specs: list[str]) -> dict[str, dict]:
    """NAME=metrics.json pairs -> {NAME: the file's errors}."""
    from shiftkit.core import files as io

    out = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"--metrics expects NAME=path/to/metrics.json (a run trained with model NAME). "
                              f"Got {spec!r} instead.")
        p = Path(path)
        if not p.is_file():
            raise InputPathError(f"--metrics {spec}: {p} is not a file (a report's metrics.json expected).")
        try:
            errors = io.read_json(p)["errors"]
            out[name] = {k: float(errors[k]) for k in ("train", "dev") if errors.get(k) is not None}
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"--metrics {spec}: {p} is not a report's metrics.json (no 'errors').") from exc
    return out


def cost_figure(archs, errors: dict[str, dict]) -> bytes:
    """PNG: measured training images/s against multiply-adds (left); a run's train and dev error against
    multiply-adds, for the models given with --metrics (right)."""
    from shiftkit.report.figures import _plt, _png

    plt = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for a in archs:
        rate = a.train_img_s if a.train_img_s is not None else float("nan")
        left.scatter(a.macs, rate, s=30 + 120 * a.params / max(b.params for b in archs), color="#4c72b0")
        left.annotate(a.name, (a.macs, rate), fontsize=8, xytext=(4, 3), textcoords="offset points")
    left.set(xscale="log", xlabel="multiply-adds per image", ylabel="training images/s on this device",
             title=f"cost at {archs[0].img_size} px (point area: parameters)")
    macs = {a.name: a.macs for a in archs}
    shown = [(n, e) for n, e in errors.items() if n in macs]
    for split, colour in (("train", "#4c72b0"), ("dev", "#c44e52")):
        pts = [(macs[n], e[split] * 100, n) for n, e in shown if split in e]
        if pts:
            right.plot([p[0] for p in pts], [p[1] for p in pts], "o", color=colour, label=f"{split} error")
            for x, y, n in pts:
                right.annotate(n, (x, y), fontsize=8, xytext=(4, 3), textcoords="offset points")
    if shown:
        right.legend(fontsize=8)
        right.set(xscale="log")
    else:
        right.text(0.5, 0.5, "no run's metrics given\n(--metrics NAME=metrics.json)", ha="center", va="center",
                   transform=right.transAxes, color="#777777")
    right.set(xlabel="multiply-adds per image", ylabel="error (%)", title="error against cost")
    return _png(fig)


def _default_names(params) -> list[str]:
    from shiftkit.training.arch import bigger_models

    return [params.train.model] + [n for n, _, _ in bigger_models(params.train.model)]


# this module's commands, added to the command line by :func:`register` (this module does not import
# :mod:`shiftkit.cli.app`, which calls it: no import cycle)
app = typer.Typer()


def register(main: typer.Typer) -> None:
    """Add this module's commands to ``main`` (once, from :mod:`shiftkit.cli.app`)."""
    main.registered_commands.extend(app.registered_commands)


@app.command("models", help=MODELS_HELP, short_help="The arithmetic of candidate CNNs per layer, checked by a "
             "forward pass; their cost on this device.")
def models_command(
    names: list[str] = typer.Argument(None, metavar="[NAME]...", help="timm model names, or lenet5."),
    img_size: int | None = typer.Option(None, "--img-size", help="Square input side in pixels (default train.img_size)."
                                        ),
    channels: int | None = typer.Option(None, "--channels", help="Input channels, 1 or 3 (default train.channels)."),
    classes: int = typer.Option(1000, "--classes", help="Classes of the head (timm's default 1000)."),
    speed: bool = typer.Option(True, "--speed/--no-speed", help="Measure images/s on this device."),
    seconds: float = typer.Option(1.0, "--seconds", help="About this long per model and mode (train, inference)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Batch of the speed measurement."),
    device: str | None = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N (default train.device)."),
    threads: int | None = typer.Option(
        None, "--threads", help="torch CPU threads while measuring (default train.threads; 0: torch's default). "
        "On a shared machine 1 avoids threads waiting on each other."),
    layers: bool = typer.Option(True, "--layers/--no-layers", help="Print each model's per-layer table."),
    metrics: list[str] = typer.Option([], "--metrics", help="NAME=metrics.json of a run trained with NAME."),
    out: Path | None = typer.Option(None, "--out", help="Folder for models.json and models.png."),
    params_path: Path = typer.Option(
        Path("params.yaml"), "--params", help="params.yaml to read settings from (defaults if absent)."),
) -> None:
    from shiftkit.core.outputs import guard
    from shiftkit.params import load_params

    guard("models", reads={"--metrics": [m.split("=", 1)[-1] for m in metrics], "--params": params_path},
          files={"--out": [Path(out) / "models.json", Path(out) / "models.png"] if out is not None else []})
    p = load_params(params_path)
    size = p.train.img_size if img_size is None else img_size
    chans = p.train.channels if channels is None else channels
    if size < 1 or size > 4096:
        raise ConfigError(f"--img-size must be between 1 and 4096 pixels. Got {size} instead.")
    if chans not in (1, 3):
        raise ConfigError(f"--channels must be 1 or 3. Got {chans} instead.")
    if classes < 1 or batch_size < 1 or not seconds > 0:
        raise ConfigError(f"--classes and --batch-size must be >= 1 and --seconds > 0. Got {classes}, "
                          f"{batch_size} and {seconds} instead.")
    n_threads = p.train.threads if threads is None else threads
    if n_threads < 0:
        raise ConfigError(f"--threads must be >= 0. Got {n_threads} instead.")
    errors = _metrics(metrics)
    import torch

    from shiftkit.training import arch
    from shiftkit.training.batches import resolve_device

    dev = resolve_device(p.train.device if device is None else device)
    if n_threads:
        torch.set_num_threads(n_threads)
    archs = []
    for name in names or _default_names(p):
        a = arch.analyse(name, size, chans, classes)
        if speed:
            a.infer_img_s, a.train_img_s = arch.throughput(name, size, chans, classes, seconds=seconds,
                                                           batch_size=batch_size, device=str(dev))
        if layers:
            console.print(layer_table(a))
        archs.append(a)
    console.print(summary_table(archs))
    for a in archs:
        for note in a.notes:
            console.print(f"[red]{a.name}: {note}[/]")
    if out is not None:
        from shiftkit.core import files as io

        io.write_json(Path(out) / "models.json", {"device": str(dev), "models": [a.to_json() for a in archs]})
        io.write_bytes(Path(out) / "models.png", cost_figure(archs, errors))
        console.print(f"wrote {out}/models.json and models.png")
