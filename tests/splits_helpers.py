"""Builders of manifests for the split and check tests: real images, real properties."""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl

from shiftkit.core.schema import MANIFEST, conform
from shiftkit.images.decode import measure
from tests import helpers


def manifest_from_images(images, labels, domain: str, *, drop: int = 1, tag: str = "") -> pl.DataFrame:
    """A manifest frame (schema.MANIFEST) of in-memory images; every image is its own group."""
    rows = []
    for i, (img, lab) in enumerate(zip(images, labels, strict=False)):
        props = measure(img)
        image_id = hashlib.sha256(img.tobytes() + f"{domain}{tag}{i}".encode()).hexdigest()
        rows.append(
            {
                "image_id": image_id,
                "path": f"{lab}/{domain}{tag}_{i:05d}.png",
                "root": domain,
                "domain": domain,
                "label": str(int(lab)),
                "width": img.shape[1],
                "height": img.shape[0],
                "format": "PNG",
                "mode": "L",
                "jpeg_quality": None,
                "drop": drop,
                "dup_group": image_id,
                **props,
            }
        )
    return conform(pl.DataFrame(rows, schema_overrides={"phash": pl.UInt64}), MANIFEST)


def example_manifest(web: int = 1200, target: int = 600, web_offset: int = 0) -> pl.DataFrame:
    """MNIST as the web domain and load_digits as the target, as the example data has them."""
    wx, wy = helpers.mnist(web, web_offset)
    tx, ty = helpers.digits(target)
    return pl.concat([manifest_from_images(wx, wy, "web"), manifest_from_images(tx, ty, "target")])


def synthetic_manifest(
    n: int, *, target_share: float = 0.1, labels: int = 10, seed: int = 0, group_size: int = 1
) -> pl.DataFrame:
    """A manifest of ``n`` rows without images (for sizes and speed): random ids, labels, domains."""
    rng = np.random.default_rng(seed)
    ids = [hashlib.sha256(f"{seed}:{i}".encode()).hexdigest() for i in range(n)]
    groups = [ids[(i // group_size) * group_size] for i in range(n)]
    domain = np.where(rng.random(n) < target_share, "target", "web")
    label = rng.integers(0, labels, n).astype(str)
    if group_size > 1:  # copies share a domain and a label, as copies from one source do
        first = (np.arange(n) // group_size) * group_size
        domain, label = domain[first], label[first]
    return pl.DataFrame(
        {
            "image_id": ids,
            "domain": domain,
            "label": label,
            "dup_group": groups,
        }
    )


def full_manifest(frame: pl.DataFrame) -> pl.DataFrame:
    """Complete a synthetic manifest with every MANIFEST column (constant image properties)."""
    n = frame.height
    filler = {
        "path": frame["label"] + "/" + frame["image_id"].str.slice(0, 12) + ".png",
        "root": frame["domain"],
        "width": pl.Series([28] * n, dtype=pl.Int32),
        "height": pl.Series([28] * n, dtype=pl.Int32),
        "format": pl.Series(["PNG"] * n),
        "mode": pl.Series(["L"] * n),
        "phash": frame["image_id"].str.slice(0, 16).str.to_integer(base=16, dtype=pl.UInt64),
        "drop": pl.Series([1] * n, dtype=pl.Int32),
    }
    out = frame.with_columns(
        **filler, **{c: pl.lit(0.5) for c in ("blur", "brightness", "contrast", "effective_res", "noise", "extent")}
    )
    return conform(out.with_columns(jpeg_quality=pl.lit(None, pl.Float64)), MANIFEST)
