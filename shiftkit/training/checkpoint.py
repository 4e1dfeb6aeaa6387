"""Model files and resume points: the weights and metadata a training writes after every epoch
(``model.safetensors`` + ``model.json``; an arm with two sets of batch-norm statistics adds the
source's, ``source_bn.safetensors``: :mod:`shiftkit.training.bnstats`), the resume point beside
them (``state.pt``: weights, optimizer, scheduler, scaler, RNG states; an arm's source statistics),
reading it back, and the dvclive logger of a run.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from shiftkit.core import files as io
from shiftkit.core.console import console
from shiftkit.core.errors import ConfigError, ModelError
from shiftkit.training import models


@dataclass
class EpochStats:
    """One epoch's sums (plain training and the adapted epoch of training/adapt.py), for the live log."""

    loss_sum: float = 0.0
    correct: float = 0.0
    count: float = 0.0
    seconds: float = 0.0

STATE_NAME = "state.pt"


@dataclass
class Optim:
    """The optimizer, its schedule and the gradient scaler of the current phase."""

    opt: torch.optim.Optimizer
    sched: Any
    scaler: torch.amp.GradScaler



def rng_state() -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": json.dumps(np.random.get_state()[1].tolist()),
        "numpy_pos": int(np.random.get_state()[2]),
        "python": json.dumps(random.getstate()[1]),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and state.get("cuda"):
        torch.cuda.set_rng_state_all(state["cuda"])
    keys = np.array(json.loads(state["numpy"]), dtype=np.uint32)
    np.random.set_state(("MT19937", keys, state["numpy_pos"], 0, 0.0))
    random.setstate((3, tuple(json.loads(state["python"])), None))


def cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    # safetensors wants contiguous CPU tensors (channels_last weights are not)
    return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}


def write_model(out_dir: Path, model: nn.Module, meta: dict[str, Any],
                source: dict[str, torch.Tensor] | None = None) -> None:
    """model.safetensors (+ the source's batch-norm statistics when given) + model.json, each written
    atomically (weights first, model.json last)."""
    from safetensors.torch import save_file

    from shiftkit.training import bnstats

    with io.atomic_path(out_dir / models.WEIGHTS_NAME) as tmp:
        # one metadata key: safetensors writes the header's metadata map in no fixed order, so two keys
        # made the same weights give different bytes; the model's name is in model.json beside it
        save_file(cpu_state_dict(model), str(tmp), metadata={"format": "pt"})
    if source is not None:
        with io.atomic_path(out_dir / bnstats.SOURCE_NAME) as tmp:
            bnstats.write(tmp, source)
    io.write_json(out_dir / models.META_NAME, meta)


def write_state(out_dir: Path, state: dict[str, Any]) -> None:
    with io.atomic_path(out_dir / STATE_NAME) as tmp:
        torch.save(state, tmp)


def read_state(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same: unusable
        raise ModelError(f"Resume point {path} is corrupt ({type(exc).__name__}); delete it to start afresh.") from exc



def checkpoint(
    out: Path, model: nn.Module, meta: dict[str, Any], epoch: int, phase: str, optim: Optim, dev_acc: float,
    *, source: dict[str, torch.Tensor] | None = None,
) -> None:
    """The model after ``epoch`` (0-based) and a resume point, each written atomically; ``source``: an
    arm's second set of batch-norm statistics (:mod:`shiftkit.training.bnstats`), saved in both."""
    write_model(out, model, {**meta, "epochs_done": epoch + 1, "dev_accuracy": round(dev_acc, 6)}, source)
    extra = {} if source is None else {"source_bn": {k: v.detach().to("cpu") for k, v in source.items()}}
    write_state(
        out,
        {
            **extra,
            "epoch": epoch + 1,
            "phase": phase,
            "params_hash": meta["params_hash"],
            "batch_path": meta["batch_path"],
            "model": cpu_state_dict(model),
            "optimizer": optim.opt.state_dict(),
            "scheduler": optim.sched.state_dict(),
            "scaler": optim.scaler.state_dict(),
            "rng": rng_state(),
            "dev_accuracy": dev_acc,
        },
    )
    _note_model_kept(out, epoch + 1)


def _note_model_kept(out: Path, epochs: int) -> None:
    """An interrupt from now on says that ``out`` holds a usable model (not "nothing was written")."""
    from shiftkit.core.console import kept_notes, note_kept

    prefix = f"the model in {out} "
    notes = kept_notes()
    notes[:] = [n for n in notes if not n.startswith(prefix)]  # only the latest epoch
    note_kept(f"{prefix}after epoch {epochs} (continue with --resume)")



def load_resume_point(out: Path, meta: dict[str, Any], resume: bool, announce: bool) -> dict[str, Any] | None:
    """The resume point in ``out`` when ``resume`` is asked and one exists, else None.

    Raises:
        ConfigError: on a resume point written with other parameters.
        ModelError: on a corrupt one.
    """
    state_path = out / STATE_NAME
    if resume and state_path.is_file():
        state = read_state(state_path)
        if state.get("params_hash") != meta["params_hash"]:
            raise ConfigError(
                f"Resume point {state_path} was written with other train parameters; drop --resume to start afresh."
            )
        if state.get("batch_path", "loader") != meta["batch_path"]:
            raise ConfigError(
                f"Resume point {state_path} was written on the {state.get('batch_path', 'loader')} batch path, this "
                f"run takes the {meta['batch_path']} path (train.cache / train.cache_mb); drop --resume or restore "
                f"them."
            )
        return state
    if resume and announce:
        console.print(f"[yellow]No resume point in {out}; starting afresh.[/]")
    return None



def open_live(live_dir: str | os.PathLike[str] | None, resume: bool, step: int):
    """A dvclive ``Live`` writing plain files into ``live_dir`` (None: no logging)."""
    if live_dir is None:
        return None
    from shiftkit.core.outputs import LIVE_OWNED, refuse_foreign

    # dvclive's start-up deletes metrics.json, report.html/md, plots/: never in a folder of other files
    refuse_foreign(live_dir, LIVE_OWNED, what="dvclive folder --live", nested={"plots": ("metrics",)})
    # dvclive must not reach for git experiments, DVC Studio or analytics
    os.environ.setdefault("DVC_STUDIO_OFFLINE", "true")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    import logging

    logging.getLogger("dvclive").setLevel(logging.ERROR)
    from dvclive import Live

    class _FilesOnlyLive(Live):
        # dvclive's repository integration would `dvc init` an enclosing git repo that has no
        # DVC, crashes in a git repo without commits, and saves git experiments; the stage
        # declares dvclive/ as its metrics and plots, so plain files are all we need
        def _init_dvc(self) -> None:
            self._dvc_repo = None

    live = _FilesOnlyLive(dir=str(live_dir), resume=resume, save_dvc_exp=False, dvcyaml=None, report=None)
    live.step = step
    return live
