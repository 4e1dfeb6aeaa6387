"""One forward pass of a trained model over a list of images: class probabilities (for the
uncertainty strategies) and pooled backbone features (for the diversity ones) together.

The images are decoded at the model's own ``img_size`` and ``channels`` (its model.json), by the
training loader's worker processes, in batches, with gradients off. The model is loaded with
:func:`shiftkit.training.models.load_trained`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shiftkit.core.console import make_progress, rate_text


@dataclass(frozen=True)
class Embedding:
    probs: np.ndarray  # (N, classes) float32
    feats: np.ndarray  # (N, D) float32, the pooled features the classifier reads
    labels: list[str]  # the model's classes


def forward_both(model: Any, x: Any) -> tuple[Any, Any]:
    """(logits, pooled features) of one batch from one pass through the backbone (timm's
    ``forward_features`` then ``forward_head(pre_logits=True)``, then the classifier)."""
    pooled = model.forward_head(model.forward_features(x), pre_logits=True)
    return model.get_classifier()(pooled), pooled


def embed_model(model: Any, meta: dict[str, Any], paths: Sequence[str], *, batch_size: int = 256,
                workers: int = 0, label: str = "select") -> Embedding:
    """Probabilities and pooled features of ``paths`` under ``model`` (from ``load_trained``)."""
    import torch

    from shiftkit.training import loader as data
    from shiftkit.training.batches import LoaderBatches

    device = torch.device("cpu")
    # channels-last: oneDNN's convolutions on the CPU then skip a layout change per layer (a resnet10t
    # at 32 px: about 0.85 ms of CPU per image instead of 1.35, benchmarks/selection.py)
    model.eval().to(device, memory_format=torch.channels_last)
    mean = torch.tensor(meta["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(meta["std"]).view(1, -1, 1, 1)
    ds = data.ImageDataset(list(paths), np.zeros(len(paths), dtype=np.int64), size=meta["img_size"],
                           channels=meta["channels"])
    loader = data.make_loader(ds, batch_size=batch_size, shuffle=False, workers=workers)
    probs, feats = [], []
    progress = make_progress()
    done, t0 = 0, time.perf_counter()
    with progress, torch.inference_mode():
        task = progress.add_task(label, total=len(ds), rate="")
        for x, _ in LoaderBatches(loader, device, mean, std, channels_last=True):
            logits, pooled = forward_both(model, x)
            probs.append(torch.softmax(logits.float(), dim=1).numpy())
            feats.append(pooled.float().numpy())
            done += x.shape[0]
            progress.update(task, advance=x.shape[0], rate=rate_text(done, time.perf_counter() - t0))
    if not probs:
        n = len(meta["labels"])
        return Embedding(np.empty((0, n), np.float32), np.empty((0, 0), np.float32), list(meta["labels"]))
    return Embedding(np.concatenate(probs), np.concatenate(feats), list(meta["labels"]))


def embed(model_dir: str | os.PathLike[str], paths: Sequence[str], *, batch_size: int = 256,
          workers: int = 0, label: str = "select") -> Embedding:
    """:func:`embed_model` with the model of ``model_dir`` (the output of ``shiftkit train``).

    Raises:
        ModelError: when the folder is not a trained model.
    """
    from shiftkit.training.models import load_trained

    model, meta = load_trained(model_dir)
    return embed_model(model, meta, paths, batch_size=batch_size, workers=workers, label=label)
