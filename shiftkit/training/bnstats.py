"""Two sets of batch-norm running statistics for one model: the target's and the source's.

The mitigation arms that send the source (web, synth) and the target through the backbone in
separate passes (``dann``, ``coral``, ``selftrain``: :mod:`shiftkit.training.adapt`) keep one set per
domain: the model's own buffers follow the pool's target batches and are saved in
``model.safetensors`` as every model's are; the source's follow the labelled batches (the source
pass, same momentum, one update per step) and are saved beside it in ``source_bn.safetensors``, a
state dict of the batch-norm buffers only (``running_mean``, ``running_var``,
``num_batches_tracked``, by their names in the model's state dict). model.json's ``bn_statistics``
says which sets exist and which domain is the target::

    "bn_statistics": {"target": "model.safetensors", "source": "source_bn.safetensors", "target_domain": "target"}

A model without the key (the baseline, ``weighted``, any model written before) has one set, its own,
and everything predicts with it as before. With it, evaluation normalises the source domains' rows
of train and bridge with the source's statistics (:func:`swapped`) and everything else (the target
domain, dev, test, images without labels) with the model's own; ``model.safetensors`` alone (a
training started from it, ``shiftkit select``, the label-free estimates) is the target's model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from shiftkit.core.errors import ModelError

SOURCE_NAME = "source_bn.safetensors"
META_KEY = "bn_statistics"
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def running_stats(model: nn.Module) -> dict[str, torch.Tensor]:
    """The batch-norm running-statistics buffers of ``model`` by state-dict name (the tensors
    themselves, not copies)."""
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
            for b in BUFFERS:
                t = getattr(m, b, None)
                if t is not None:
                    out[f"{name}.{b}" if name else b] = t
    return out


def copy_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the model's running statistics, on its device: a second set to train apart."""
    return {k: t.detach().clone() for k, t in running_stats(model).items()}


@contextlib.contextmanager
def swapped(model: nn.Module, stats: dict[str, torch.Tensor] | None) -> Iterator[None]:
    """Inside ``with swapped(model, stats)`` the model's batch-norm layers hold the tensors of ``stats``
    as their running statistics: an eval-mode pass normalises with them, a train-mode pass updates
    them in place (with the layers' own momentum); on leaving, the model's own come back untouched.
    A tensor on another device than the model's is moved there (a copy: then updates are lost, which
    only evaluation does). ``None`` changes nothing."""
    if stats is None:
        yield
        return
    saved = []
    try:
        for key, t in stats.items():
            owner, _, buf = key.rpartition(".")
            m = model.get_submodule(owner)
            own = getattr(m, buf)
            saved.append((m, buf, own))
            setattr(m, buf, t if t.device == own.device else t.to(own.device))
        yield
    finally:
        for m, buf, own in reversed(saved):
            setattr(m, buf, own)


def meta_entry(target_domain: str) -> dict[str, str]:
    """model.json's ``bn_statistics`` of a model with both sets."""
    from shiftkit.training.models import WEIGHTS_NAME

    return {"target": WEIGHTS_NAME, "source": SOURCE_NAME, "target_domain": target_domain}


def target_domain(meta: dict[str, Any]) -> str | None:
    """The target domain of a model with both sets (None: one set, its own, for every image)."""
    entry = meta.get(META_KEY)
    return entry["target_domain"] if entry else None


def write(path: Path, stats: dict[str, torch.Tensor]) -> None:
    """The source's statistics as a safetensors file (``path`` is the temporary of an atomic write)."""
    from safetensors.torch import save_file

    save_file({k: v.detach().to("cpu").contiguous() for k, v in stats.items()}, str(path), metadata={"format": "pt"})


def read_source(model_dir: str | Path, model: nn.Module, meta: dict[str, Any]) -> dict[str, torch.Tensor] | None:
    """The source's statistics of a model folder whose model.json names them, else None.

    Raises:
        ModelError: when model.json's ``bn_statistics`` is not as shiftkit writes it, or the file it
            names is missing, corrupt or does not fit the model's batch-norm layers.
    """
    entry = meta.get(META_KEY)
    if entry is None:
        return None
    where = Path(model_dir) / "model.json"
    if (not isinstance(entry, dict) or entry.get("source") != SOURCE_NAME
            or not isinstance(entry.get("target_domain"), str)):
        raise ModelError(f"Model metadata {where}: {META_KEY} is {str(entry)[:80]!r}; expected {{'target': ..., "
                         f"'source': {SOURCE_NAME!r}, 'target_domain': NAME}} as shiftkit train writes it.")
    path = Path(model_dir) / SOURCE_NAME
    if not path.is_file():
        raise ModelError(f"Model folder {model_dir} has no {SOURCE_NAME}, which its model.json names (the source "
                         f"domains' batch-norm statistics); copy the whole folder.")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        stats = dict(load_file(str(path)))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{path} is corrupt or not a safetensors file: {str(exc).splitlines()[0]}") from exc
    own = running_stats(model)
    wrong = sorted(set(own) ^ set(stats)) or [k for k in own if stats[k].shape != own[k].shape]
    if wrong:
        raise ModelError(f"{path} does not fit the batch-norm layers of {where}'s model (e.g. {wrong[0]!r}).")
    return {k: stats[k].to(own[k].dtype) for k in own}
