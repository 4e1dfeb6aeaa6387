"""params.yaml sections of the example and ingest: frozen dataclasses, defaults as in params.yaml."""

from __future__ import annotations

from shiftkit.core.config import (
    COUNT,
    SEED,
    WORKERS,
    Interval,
    Options,
    ParamsSection,
    frozen,
    param,
    section,
)

# --- example --------------------------------------------------------------------------------------


@section("example")
@frozen
class ExampleParams(ParamsSection):
    """The embedded examples: digits (MNIST as web, load_digits as target) and photos."""

    web_images: int = param(6000, COUNT)  # how many MNIST digits to write (at most the shipped subset)
    # labelled load_digits images (the target) and, disjoint from them in the same seeded draw, target
    # images written without labels (the pool the report estimates); together at most 1797
    target_images: int = param(1197, Interval(int, 1, 1797))
    unlabelled_images: int = param(600, Interval(int, 0, 1796))
    seed: int = param(0, SEED)
    name: str = param("digits", Options(("digits", "photos")))  # which example the DVC stage writes
    objects: int = param(16, Interval(int, 2, 64))  # photos: objects (grid cells) per class photograph
    views: int = param(4, Interval(int, 1, 32))  # photos: views (crops) per object, one group each
    size: int = param(64, Interval(int, 16, 256))  # photos: side of a web image in pixels


# --- ingest ---------------------------------------------------------------------------------------


@section("ingest")
@frozen
class IngestParams(ParamsSection):
    """Decoding limits, duplicate detection and parallelism of ``shiftkit ingest``."""

    max_pixels: int = param(89_478_485, COUNT)  # above this (width x height from the header): decompression_bomb
    # a file larger than this many bytes is quarantined as too_large without being read (a 1 TB
    # sparse file would otherwise exhaust memory); 512 MiB holds an uncompressed RGB image of
    # max_pixels (268 MB) with room to spare
    max_bytes: int = param(536_870_912, COUNT)
    min_size: int = param(8, COUNT)  # images with a side smaller than this are quarantined as too_small
    # phash Hamming distance at or below which images are near copies (phash distances come in
    # even steps; at 4 the example chains 2,534 digits of several classes into one group through
    # near neighbours, at 2 the largest group is 547 ones)
    near_dup_radius: int = param(2, Interval(int, 0, 32))
    background: int = param(255, Interval(int, 0, 255))  # grey level that transparent pixels are composited on
    # folders between the label folder (or an unlabelled root) and the file that name the user's group
    # of an image (one object, one session): DOMAIN/LABEL/GROUP/FILE at 1; split keeps a group in one split
    group_depth: int = param(0, Interval(int, 0, 8))
    workers: int = param(0, WORKERS, speed_only=True)  # processes; 0 means all cores
