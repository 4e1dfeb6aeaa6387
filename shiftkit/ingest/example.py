"""The embedded examples. ``digits``: real MNIST digits as the sharp "web" domain, scikit-learn's
8x8 load_digits as the blurry, low-resolution "target" domain, written as PNG ImageFolders.
``photos``: real photographs cut into objects and views, the target seen by a phone camera
(``shiftkit.ingest.photos``).

Both also write ``unlabelled/``: target images without labels (a flat folder, for ``ingest
--unlabelled target=...``), the pool whose error the report estimates without labels. digits:
``example.unlabelled_images`` load_digits images drawn in the same seeded permutation as the
labelled target, after it (so the two are disjoint and alike); the file keeps the load_digits
index (``digit_0123.png``), never the label. photos: the target camera's views of the objects
that only the web shows.

The same parameters always write the same bytes (PNG encoding has no timestamps), so the
example can be a DVC stage whose outputs are cached and compared.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from shiftkit.core.errors import ConfigError, InputPathError
from shiftkit.core.files import ensure_dir, signals_held
from shiftkit.core.outputs import is_no_space, no_space
from shiftkit.ingest import photos
from shiftkit.ingest.params import ExampleParams

EXAMPLES = ("digits", "photos")
MNIST_FILE = "mnist_subset.npz"
TARGET_MAX = 1797
# what either example writes (so that one replaces the other in the same destination)
_OURS = {
    "web": re.compile(rf"^\d/mnist_\d{{5}}\.png$|{photos.WEB_PATTERN}"),
    "target": re.compile(rf"^\d/digit_\d{{4}}\.png$|{photos.TARGET_PATTERN}"),
    "unlabelled": re.compile(rf"^digit_\d{{4}}\.png$|{photos.POOL_PATTERN}"),
}
DOMAINS = tuple(_OURS)  # the folders an example writes (and replaces)


def mnist_subset() -> tuple[np.ndarray, np.ndarray]:
    """The shipped MNIST subset: (12000, 28, 28) uint8 images and their labels (see data/README.md)."""
    with resources.files("shiftkit.ingest").joinpath("data", MNIST_FILE).open("rb") as fh:
        with np.load(fh) as npz:
            return npz["images"].copy(), npz["labels"].copy()


def load_digits_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's load_digits as uint8 (1797, 8, 8) images scaled from 0..16 to 0..255."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return np.rint(d.images * (255.0 / 16.0)).astype(np.uint8), d.target.astype(np.uint8)


def _clear(folder: Path, domain: str) -> None:
    """Refuse a previous example folder that holds anything but the example's files."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise InputPathError(f"{folder} exists and is not a folder; choose another destination.")
    foreign = [
        p for p in folder.rglob("*") if not p.is_dir() and not _OURS[domain].match(p.relative_to(folder).as_posix())
    ]
    if foreign:
        raise InputPathError(
            f"{folder} already holds files that the example did not write (e.g. {foreign[0]}); "
            "choose an empty destination."
        )


@contextlib.contextmanager
def staged_example(dest: str | Path, domains: tuple[str, ...]) -> Iterator[Path]:
    """Build an example in a temporary folder inside ``dest``, then swap its ``domains`` in.

    Yields the empty temporary folder; the builder writes ``<tmp>/<domain>/...`` there. Only
    when it returns are the previous ``dest/<domain>`` folders (checked first: nothing but an
    example's files) swapped for the new ones, with SIGINT/SIGTERM held back during the swap;
    an exception, Ctrl-C or a full disk while building leaves the previous example as it was.

    Raises:
        InputPathError: when ``dest`` cannot be written, holds foreign files, or the disk is full.
    """
    root = ensure_dir(dest)
    for domain in domains:
        _clear(root / domain, domain)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=".example.", suffix=".new", dir=root))
    except OSError as exc:
        if is_no_space(exc):
            raise no_space(root, exc) from exc
        raise InputPathError(f"Cannot write into {root}: {exc.strerror or exc}.") from exc
    old = tmp.with_suffix(".old")
    try:
        try:
            yield tmp
        except Exception as exc:
            if is_no_space(exc, root):
                raise no_space(root, exc) from exc
            raise
        _swap(root, tmp, old, domains)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def _swap(root: Path, tmp: Path, old: Path, domains: tuple[str, ...]) -> None:
    """Move each ``root/<domain>`` into ``old`` and ``tmp/<domain>`` into its place; undone on failure."""
    with signals_held():
        old.mkdir()
        done: list[str] = []
        try:
            for domain in domains:
                if (root / domain).exists():
                    os.replace(root / domain, old / domain)
                done.append(domain)
                os.replace(tmp / domain, root / domain)
        except BaseException:
            for domain in reversed(done):
                if (old / domain).exists():
                    shutil.rmtree(root / domain, ignore_errors=True)
                    os.replace(old / domain, root / domain)
            raise
        from shiftkit.core.console import note_kept

        note_kept(f"the new example in {root}")


def _write(folder: Path, images: np.ndarray, labels: np.ndarray, indices: np.ndarray, prefix: str, width: int) -> int:
    for img, lab, idx in zip(images, labels, indices, strict=False):
        d = folder / str(int(lab))
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{prefix}_{int(idx):0{width}d}.png", format="PNG")
    return len(images)


def _write_pool(folder: Path, images: np.ndarray, indices: np.ndarray) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    for img, idx in zip(images, indices, strict=True):
        Image.fromarray(img).save(folder / f"digit_{int(idx):04d}.png", format="PNG")
    return len(images)


def target_draw(params: ExampleParams) -> tuple[np.ndarray, np.ndarray]:
    """The load_digits indices of the labelled target and of the unlabelled pool (sorted, disjoint):
    one seeded permutation, the target its first ``target_images``, the pool the next ``unlabelled_images``.

    Raises:
        ConfigError: when the two together exceed the 1,797 load_digits images.
    """
    if params.target_images + params.unlabelled_images > TARGET_MAX:
        raise ConfigError(
            f"The 'example.target_images' + 'example.unlabelled_images' parameters must be at most {TARGET_MAX:,} "
            f"(load_digits; the pool is disjoint from the labelled target). Got {params.target_images:,} + "
            f"{params.unlabelled_images:,} instead."
        )
    order = np.random.default_rng([params.seed, TARGET_MAX]).permutation(TARGET_MAX)
    n = params.target_images
    return np.sort(order[:n]), np.sort(order[n:n + params.unlabelled_images])


def write_example(name: str, dest: str | Path, params: ExampleParams | None = None) -> dict[str, int]:
    """Write example ``name`` into ``dest``/web, ``dest``/target and ``dest``/unlabelled; the image counts.

    digits: ``params.web_images`` MNIST digits are drawn (seeded, without replacement) from the
    shipped 12,000; ``params.target_images`` load_digits images form the labelled target and the
    next ``params.unlabelled_images`` of the same seeded permutation the pool without labels
    (:func:`target_draw`).
    photos: ``params.objects`` objects per class, ``params.views`` views each, ``params.size`` px
    (``shiftkit.ingest.photos``), and ``dest``/PHOTOS.md with the photographs' sources and licences.

    Raises:
        ConfigError: on an unknown example name or more web images than are shipped.
        InputPathError: when ``dest`` cannot be written or already holds other files.
    """
    if name not in EXAMPLES:
        raise ConfigError(f"Unknown example {name!r}; valid examples: {', '.join(EXAMPLES)}.")
    params = params or ExampleParams()
    if name == "photos":
        root = ensure_dir(dest)
        for domain in DOMAINS:
            _clear(root / domain, domain)
        return photos.write_photos(root, params.objects, params.views, params.size, params.seed)
    web_x, web_y = mnist_subset()
    if params.web_images > len(web_x):
        raise ConfigError(
            f"The 'example.web_images' parameter must be at most {len(web_x)} (the shipped MNIST subset). "
            f"Got {params.web_images} instead."
        )
    if params.web_images < len(web_x):
        pick = np.sort(np.random.default_rng(params.seed).choice(len(web_x), params.web_images, replace=False))
    else:
        pick = np.arange(len(web_x))
    labelled, pool = target_draw(params)
    tgt_x, tgt_y = load_digits_images()
    with staged_example(dest, DOMAINS) as tmp:  # atomic: the earlier example stays until done
        return {
            "web": _write(tmp / "web", web_x[pick], web_y[pick], pick, "mnist", 5),
            "target": _write(tmp / "target", tgt_x[labelled], tgt_y[labelled], labelled, "digit", 4),
            "unlabelled": _write_pool(tmp / "unlabelled", tgt_x[pool], pool),
        }


def summary_line(name: str, counts: dict[str, int], dest: str | Path) -> str:
    """The one line the CLI command and the DVC stage print after writing an example."""
    return f"example {name}: " + ", ".join(f"{n:,} {d} images" for d, n in counts.items()) + f" in {dest}"
