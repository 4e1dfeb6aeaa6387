"""A web/phone photo pair built from real photographs, for the colour fit's tests and benchmarks.

The photographs are scikit-learn's two sample images (``china.jpg``, ``flower.jpg``), shipped with
scikit-learn (no download). Web images are random crops saved as high-quality JPEGs; target images
are *other* crops seen through a simple phone camera defined here, independently of
``shiftkit/synth`` (so that a test of the fit does not grade the fit with its own steps): a lower
resolution, lens blur, a white-balance error (a warm cast), Poisson-Gaussian sensor noise and JPEG
with 4:2:0 chroma subsampling. ``cast=False`` gives the same camera without the cast.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

WARM = (1.18, 1.0, 0.80)  # red, green, blue gains of the target's white balance error


def photos() -> list[np.ndarray]:
    """The real RGB photographs the pairs are cut from."""
    from sklearn.datasets import load_sample_images

    return [np.ascontiguousarray(im) for im in load_sample_images().images]


def crops(n: int, side: int, seed: int) -> list[np.ndarray]:
    """``n`` square crops (30-80% of the short side, random place, random mirror) resized to ``side``,
    from each photo in turn (crop ``i`` from photo ``i % 2``)."""
    rng = np.random.default_rng(seed)
    src = photos()
    out = []
    for i in range(n):
        im = src[i % len(src)]  # the photos in turn: every set holds them in the same proportion
        h, w = im.shape[:2]
        c = int(rng.uniform(0.3, 0.8) * min(h, w))
        y, x = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
        crop = im[y:y + c, x:x + c]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        out.append(cv2.resize(np.ascontiguousarray(crop), (side, side), interpolation=cv2.INTER_AREA))
    return out


def jpeg(img: np.ndarray, quality: int, subsampling_420: bool = True) -> bytes:
    """JPEG bytes of an RGB or grey image (cv2's encoder; 4:2:0 or 4:4:4 chroma)."""
    arr = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    flags = [cv2.IMWRITE_JPEG_QUALITY, quality]
    if img.ndim == 3:
        flags += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                  cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420 if subsampling_420 else cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    ok, buf = cv2.imencode(".jpg", arr, flags)
    assert ok
    return buf.tobytes()


def decode_jpeg(data: bytes, grey: bool = False) -> np.ndarray:
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
    return arr if grey else cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


def phone(img: np.ndarray, rng: np.random.Generator, *, side: int = 224, cast: bool = True) -> bytes:
    """The target camera: resolution loss, lens blur, white balance, Poisson-Gaussian noise, JPEG q75 4:2:0."""
    x = cv2.resize(img, (side // 2, side // 2), interpolation=cv2.INTER_AREA)  # a poorer sensor
    x = cv2.resize(x, (side, side), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
    x = cv2.GaussianBlur(x, (0, 0), 1.0)
    if cast:
        x = x * np.array(WARM, np.float32)
    x = np.clip(x, 0.0, 1.0)
    # shot noise (variance proportional to the signal) plus read noise
    var = 0.0004 * x + 0.015**2
    x = x + rng.normal(size=x.shape).astype(np.float32) * np.sqrt(var)
    out = np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
    return jpeg(out, 75)


def write_pair(root: Path, n_web: int, n_target: int, *, web_side: int = 256, target_side: int = 224,
               cast: bool = True, grey: bool = False, seed: int = 0) -> tuple[Path, Path]:
    """JPEG folders ``root/web/<label>/`` and ``root/target/<label>/`` (the label: which photo)."""
    rng = np.random.default_rng([seed, 7])
    web = crops(n_web, web_side, seed)
    tgt = crops(n_target, web_side, seed + 1000)
    for name, imgs in (("web", web), ("target", tgt)):
        for i, im in enumerate(imgs):
            data = jpeg(im, 92) if name == "web" else phone(im, rng, side=target_side, cast=cast)
            if grey:
                data = jpeg(decode_jpeg(data, grey=True), 92 if name == "web" else 75)
            p = root / name / str(i % 2) / f"{name[0]}{i:04d}.jpg"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
    return root / "web", root / "target"


def load_folder(folder: Path) -> tuple[list[np.ndarray], list[float | None]]:
    """Decoded pixels and estimated JPEG qualities of every image under ``folder`` (sorted)."""
    from shiftkit.images.decode import decode

    decs = [decode(p.read_bytes()) for p in sorted(Path(folder).rglob("*.jpg"))]
    return [d.pixels for d in decs], [d.jpeg_quality for d in decs]
