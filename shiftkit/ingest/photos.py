"""The photo example (``shiftkit example photos DEST``): real photographs that ship on disk with
scikit-image and scikit-learn, cut into objects and views, and a target seen by a poor phone camera.

- **Classes** are source photographs (an astronaut, a cat, a coffee cup, a rocket launch, a temple,
  a flower). **Objects** are the cells of a grid laid over each photograph (``example.objects``
  per class: different parts of the scene, so a model must generalise to parts it never saw).
  **Views** of one object are crops around its cell with a small shift, scale and rotation
  (``example.views``); they are written into one folder, ``<domain>/<label>/<object>/``, so that
  ``ingest --group-depth 1`` (``ingest.group_depth: 1`` in ``params-photos.yaml``) makes each
  object a group that split keeps whole.
- **Web** images are sharp and well framed: ``example.size`` px PNG, resampled with Lanczos.
- **Target** images are other views, of mostly other objects (a seeded permutation of the cells:
  web takes the first five eighths, target the last half, so an eighth of the objects are in
  both), rendered by :class:`Camera`: a warm white balance, lens blur, a lower resolution,
  brightness-dependent (Poisson-Gaussian) sensor noise and JPEG with 4:2:0 chroma subsampling.
- **Unlabelled** target images (``unlabelled/<group>/v<view>.jpg``, for ``ingest --unlabelled``):
  the same camera's views of the objects only the web shows (none of them in dev or test), one
  folder per object under a neutral name (``u<rank>``, a seeded order), so neither the path nor the
  group tells the class.

The photographs are read from the installed packages' files (nothing is downloaded); ``SOURCES``
records each one's origin and licence, written beside the images as ``PHOTOS.md``. The same
parameters always write the same bytes.
"""

from __future__ import annotations

import importlib.util
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from shiftkit.core.errors import ConfigError

NOTE_FILE = "PHOTOS.md"
WEB_PATTERN = r"^[a-z]+/[a-z]+-o\d{2}/v\d{2}\.png$"
TARGET_PATTERN = r"^[a-z]+/[a-z]+-o\d{2}/v\d{2}\.jpg$"
POOL_PATTERN = r"^u\d{3}/v\d{2}\.jpg$"


@dataclass(frozen=True)
class Source:
    label: str
    package: str  # the installed package whose files hold the photograph
    file: str  # path inside the package
    origin: str
    licence: str


SOURCES = (
    Source("astronaut", "skimage", "data/astronaut.png", "NASA Great Images (Eileen Collins), via scikit-image",
           "public domain (no known copyright restrictions)"),
    Source("cat", "skimage", "data/chelsea.png", "Chelsea the cat by Stefan van der Walt, via scikit-image", "CC0"),
    Source("coffee", "skimage", "data/coffee.png", "coffee cup by Rachel Michetti (Pikolo Espresso Bar), via "
           "scikit-image", "CC0"),
    Source("rocket", "skimage", "data/rocket.jpg", "DSCOVR launch on Falcon 9, SpaceX Photos, via scikit-image",
           "public domain (released by SpaceX)"),
    Source("temple", "sklearn", "datasets/images/china.jpg", "china.jpg by danielbuechele (Flickr), via "
           "scikit-learn's load_sample_images", "CC BY 2.0"),
    Source("flower", "sklearn", "datasets/images/flower.jpg", "flower.jpg by vultilion (Flickr), via "
           "scikit-learn's load_sample_images", "CC BY 2.0"),
)


@dataclass(frozen=True)
class Camera:
    """The target's phone camera, applied in this order to a sharp view of ``size`` px."""

    warm: tuple[float, float, float] = (1.10, 1.0, 0.82)  # white balance gains (R, G, B): a warm cast
    blur: float = 0.9  # lens blur, Gaussian sigma in pixels at the web size
    scale: float = 0.625  # output side / web side (64 px -> 40 px): the lower resolution
    shot: float = 0.003  # Poisson-like noise variance per unit brightness (grey in [0, 1])
    read: float = 0.0002  # Gaussian read-noise variance
    quality: int = 55  # JPEG quality, chroma subsampled 4:2:0

    def __call__(self, view: Image.Image, rng: np.random.Generator) -> bytes:
        x = np.asarray(view, np.float32) / 255.0
        x = np.clip(x * np.asarray(self.warm, np.float32), 0, 1)
        img = Image.fromarray(np.rint(x * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(self.blur))
        side = max(8, round(view.width * self.scale))
        img = img.resize((side, side), Image.BILINEAR)
        x = np.asarray(img, np.float32) / 255.0
        sigma = np.sqrt(self.shot * x + self.read)  # brightness-dependent: brighter pixels are noisier
        x = np.clip(x + rng.standard_normal(x.shape).astype(np.float32) * sigma, 0, 1)
        buf = io.BytesIO()
        Image.fromarray(np.rint(x * 255).astype(np.uint8)).save(buf, "JPEG", quality=self.quality, subsampling=2)
        return buf.getvalue()


def _package_file(package: str, rel: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"The photos example needs the package {package!r} (its bundled photographs); "
            f"install it: pip install {'scikit-image' if package == 'skimage' else 'scikit-learn'}."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / rel
    if not path.is_file():
        raise ConfigError(f"The photos example expected {path} in the installed {package!r}; reinstall it.")
    return path


def load_photo(src: Source) -> Image.Image:
    """One source photograph, RGB."""
    with Image.open(_package_file(src.package, src.file)) as im:
        return im.convert("RGB")


def _grid(width: int, height: int, n: int) -> tuple[list[tuple[float, float]], float]:
    """``n`` cell centres of a near-square grid over the photograph, and the cell side."""
    cols = max(1, round(math.sqrt(n * width / height)))
    rows = math.ceil(n / cols)
    side = min(width / cols, height / rows)
    x0, y0 = (width - cols * side) / 2, (height - rows * side) / 2
    centres = [(x0 + (i % cols + 0.5) * side, y0 + (i // cols + 0.5) * side) for i in range(n)]
    return centres, side


def crop_view(photo: Image.Image, centre: tuple[float, float], side: float, size: int, rng: np.random.Generator):
    """A crop of side about ``side`` around ``centre``: shifted, scaled and rotated a little, at ``size`` px.

    The centre is kept far enough from the photograph's edges that the rotated crop lies inside it
    (no black corners or strips: the web images are well framed).
    """
    s = side * rng.uniform(0.9, 1.1)
    cx, cy = centre[0] + rng.uniform(-0.08, 0.08) * side, centre[1] + rng.uniform(-0.08, 0.08) * side
    angle = rng.uniform(-8, 8)
    half = 0.5 * s * (math.cos(math.radians(abs(angle))) + math.sin(math.radians(abs(angle))))
    cx = min(max(cx, half), photo.width - half) if photo.width > 2 * half else photo.width / 2
    cy = min(max(cy, half), photo.height - half) if photo.height > 2 * half else photo.height / 2
    pad = s * 0.75  # room for the rotation, cropped away after it
    box = (round(cx - pad), round(cy - pad), round(cx + pad), round(cy + pad))
    patch = photo.crop(box).rotate(angle, resample=Image.BICUBIC)  # outside the photo: black, cropped off
    c = patch.width / 2
    patch = patch.crop((round(c - s / 2), round(c - s / 2), round(c + s / 2), round(c + s / 2)))
    return patch.resize((size, size), Image.LANCZOS)


def objects_of(n: int, seed: int, label: str) -> tuple[list[int], list[int]]:
    """The cells web and target show: a seeded permutation, web its first 5/8, target its last 1/2."""
    order = np.random.default_rng([seed, *label.encode()]).permutation(n).tolist()
    return sorted(order[: max(1, (5 * n) // 8)]), sorted(order[n - max(1, n // 2):])


def _web_only(n: int, seed: int, label: str) -> list[int]:
    """The objects the web shows and the target does not: the unlabelled pool's."""
    web_objs, target_objs = objects_of(n, seed, label)
    return sorted(set(web_objs) - set(target_objs))


def write_photos(root: Path, objects: int, views: int, size: int, seed: int) -> dict[str, int]:
    """Write ``root``/web, ``root``/target, ``root``/unlabelled (already cleared) and ``root``/PHOTOS.md;
    the counts."""
    camera = Camera()
    counts = {"web": 0, "target": 0, "unlabelled": 0}
    pool = [(k, o) for k, src in enumerate(SOURCES) for o in _web_only(objects, seed, src.label)]
    rank = {ko: r for r, ko in enumerate(pool[i] for i in np.random.default_rng([seed, 7]).permutation(len(pool)))}
    (root / "unlabelled").mkdir(parents=True, exist_ok=True)
    for k, src in enumerate(SOURCES):
        photo = load_photo(src)
        centres, side = _grid(photo.width, photo.height, objects)
        web_objs, target_objs = objects_of(objects, seed, src.label)
        unl_objs = _web_only(objects, seed, src.label)
        for domain, chosen in (("web", web_objs), ("target", target_objs), ("unlabelled", unl_objs)):
            for o in chosen:
                folder = (root / domain / f"u{rank[k, o]:03d}" if domain == "unlabelled"
                          else root / domain / src.label / f"{src.label}-o{o:02d}")
                folder.mkdir(parents=True, exist_ok=True)
                for v in range(views):
                    rng = np.random.default_rng([seed, k, o, v, domain != "web"])
                    view = crop_view(photo, centres[o], side, size, rng)
                    if domain == "web":
                        view.save(folder / f"v{v:02d}.png", format="PNG")
                    else:
                        (folder / f"v{v:02d}.jpg").write_bytes(camera(view, rng))
                    counts[domain] += 1
    (root / NOTE_FILE).write_text(note(objects, views, size, seed), encoding="utf-8")
    return counts


def note(objects: int, views: int, size: int, seed: int) -> str:
    """PHOTOS.md: what the example holds, where each photograph comes from, and its licence."""
    c = Camera()
    lines = [
        "# The shiftkit photos example",
        "",
        f"Written by `shiftkit example photos` (objects {objects} per class, views {views} per object, "
        f"{size} px, seed {seed}). Each class is one photograph; each object a cell of a grid over it; "
        "each view a crop around the cell (shift up to 8%, scale 0.9-1.1, rotation up to 8 degrees). "
        "One folder per object: ingest with `--group-depth 1` to make each object a group. `unlabelled/` "
        "holds the target camera's views of the objects only the web shows, without labels (folders "
        "named in a seeded order): `ingest --unlabelled target=unlabelled`.",
        "",
        f"Target camera: white balance gains {c.warm} (warm cast), Gaussian blur {c.blur} px, "
        f"resolution x{c.scale}, Poisson-Gaussian noise (variance {c.shot} x brightness + {c.read}), "
        f"JPEG quality {c.quality} with 4:2:0 chroma subsampling.",
        "",
        "| class | photograph | licence |",
        "| --- | --- | --- |",
        *(f"| {s.label} | {s.origin} (`{s.package}/{s.file}`) | {s.licence} |" for s in SOURCES),
        "",
    ]
    return "\n".join(lines)
