"""Per-image work of the synth stage, run in worker processes through ``shiftkit.runtime.imap.imap``.

Workers receive small items (paths, seeds) and send small records back; the recipe travels
once per worker, as json, through the pool's initializer. Every pool of the package is
``shiftkit.runtime.imap.imap``'s, so interrupts and shutdown follow its one rule.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

from shiftkit.synth.recipe import Recipe
from shiftkit.synth.registry import warm

if TYPE_CHECKING:
    from shiftkit.images.decode import Decoded

PathLike = str | os.PathLike[str]
_RECIPE: Recipe | None = None  # per worker process, set by init_worker


def init_worker(recipe_json: str) -> None:
    """Pool initializer: the recipe this worker applies, and every transform built once."""
    global _RECIPE
    from shiftkit.core.lazy import albumentations_without_torch

    albumentations_without_torch()  # first, so that no later import pulls torch in (issue 25)
    _RECIPE = Recipe.from_json(recipe_json)
    warm()


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of uint8 grey or RGB pixels (cv2's encoder: no timestamps, stable bytes)."""
    arr = pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", arr)
    if not ok:  # pragma: no cover - cv2 encodes any uint8 grey or BGR array
        raise ValueError("cv2 could not encode the image as PNG")
    return buf.tobytes()


def _write_file(path: str, data: bytes) -> None:
    # the stage builds its whole output folder aside and swaps it in (io.replace_dir): a plain write is safe;
    # under a URL each object lands whole (shiftkit/images/storage.py), below a prefix named by its inputs (stage.py)
    if "://" in path:
        from shiftkit.images import storage

        storage.write_bytes(path, data)
        return
    with open(path, "wb") as fh:
        fh.write(data)


def synth_one(item: tuple[str, str, str, int]) -> tuple[str, str, str]:
    """Worker: decode a parent, degrade it with its seed, write the PNG; (path, sha256, record) back."""
    from shiftkit.images.decode import decode

    src, dst, rel, seed = item
    pixels = decode(src).pixels
    out, record = _RECIPE.apply(pixels, seed)  # type: ignore[union-attr]
    data = encode_png(out)
    _write_file(dst, data)
    return rel, hashlib.sha256(data).hexdigest(), json.dumps(record, sort_keys=True, separators=(",", ":"))


def decode_many(paths: Sequence[PathLike], workers: int) -> list[Decoded]:
    """Decoded images of ``paths``, in order."""
    from shiftkit.images.decode import decode
    from shiftkit.runtime.imap import imap

    return list(imap(decode, [str(p) for p in paths], workers=workers, chunksize=16))


def _moved_features(item: tuple[str, int, int]) -> np.ndarray:
    """Worker: the cheap features (thumbnail + properties) of one parent's degraded copy."""
    from shiftkit.images.decode import decode
    from shiftkit.images.features import image_features

    src, seed, size = item
    pixels = decode(src).pixels
    out = _RECIPE.apply(pixels, seed)[0] if _RECIPE.steps else pixels  # type: ignore[union-attr]
    thumb, props = image_features(out, size)
    return np.r_[thumb.astype(np.float64), props]


def moved_features(recipe: Recipe, paths: Sequence[PathLike], seeds: Sequence[int], size: int, workers: int,
                   label: str | None = None) -> np.ndarray:
    """Features of every image of ``paths`` degraded by ``recipe`` with its seed (rows in order).

    With ``label``, a progress bar of that name shows the pass.
    """
    from shiftkit.core.console import make_progress, rate_text
    from shiftkit.runtime.imap import imap, resolve_workers

    items = [(str(p), int(s), size) for p, s in zip(paths, seeds, strict=True)]
    if not items:
        return np.zeros((0, size * size))
    n = resolve_workers(workers)
    chunk = max(1, min(64, len(items) // (16 * n)))
    rows = []
    t0 = time.perf_counter()
    with make_progress() as progress:
        task = progress.add_task(label or "features", total=len(items), rate="", visible=label is not None)
        for k, row in enumerate(imap(_moved_features, items, workers=n, chunksize=chunk,
                                     initializer=init_worker, initargs=(recipe.to_json(),)), 1):
            rows.append(row)
            if k % 64 == 0 or k == len(items):
                progress.update(task, completed=k, rate=rate_text(k, time.perf_counter() - t0))
    return np.vstack(rows)
