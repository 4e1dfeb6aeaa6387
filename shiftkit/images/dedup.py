"""Exact and near-duplicate grouping of images by their 64-bit perceptual hashes.

``hamming_pairs`` finds every pair of hashes within a Hamming radius without comparing all
pairs: multi-index hashing. The 64 bits are cut into m chunks; two hashes within ``radius``
bits are within ``radius // m`` bits on at least one chunk (pigeonhole; chunks interleave the
bits, see ``_spread``), so the candidates are
the pairs whose chunk keys are that close, found by probing sorted buckets. m is chosen from
the radius and the number of hashes so that probes and candidates stay near linear in the
count. Candidates are verified in bounded blocks (a vectorised popcount), and each pair is
reported once: under the first chunk on which it is close. ``group_ids`` turns the pairs (and
optional exact keys) into groups with a connected-components pass.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from shiftkit.core.errors import ConfigError

BITS = 64
# Candidate pairs expanded and verified at once: bounds memory (~16 bytes a pair in flight)
# when similar images crowd one bucket.
BLOCK_PAIRS = 1 << 21
SKEW = 8.0  # how much more crowded real phash buckets are than uniform ones (MNIST: ~5-10x)
DIRECT_BITS = 22  # chunk keys up to this wide use a direct table of bucket starts (32 MB at most)


def _check_radius(radius: int) -> None:
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or not 0 <= radius <= 63:
        raise ConfigError(
            f"The 'radius' parameter of hamming_pairs must be an integer in [0, 63]. Got {radius!r} instead."
        )


def _as_hashes(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ConfigError(
            f"The {name!r} parameter of hamming_pairs must be a 1-d array of hashes. Got shape {arr.shape}."
        )
    if arr.dtype == np.uint64:
        return arr
    if arr.size and arr.dtype.kind == "i" and arr.min() < 0:
        return arr.astype(np.int64).view(np.uint64)  # signed storage of 64-bit hashes
    if arr.dtype.kind not in "iu" and arr.size:
        raise ConfigError(f"The {name!r} parameter of hamming_pairs must hold integers. Got dtype {arr.dtype}.")
    return arr.astype(np.uint64)


def _plan(radius: int, n: int) -> tuple[int, int]:
    """(chunks m, per-chunk radius s) for multi-index hashing of ``n`` hashes.

    Cutting 64 bits into m chunks, a pair within ``radius`` is within s = radius // m on at
    least one chunk (else it would differ in m * (s + 1) > radius bits). Few, wide chunks mean
    few candidates but many probes per hash (every key within s of its own); many narrow chunks
    the opposite. Phashes of similar pictures crowd a few keys, so the candidate term is
    weighted well above the uniform estimate.
    """
    best = (math.inf, 1, radius)
    for m in range(1, radius + 2):
        s = radius // m
        width = BITS // m
        probes = sum(math.comb(width, k) for k in range(s + 1))
        cost = n * m * probes * (1.0 + SKEW * n / 2.0**width)
        if cost < best[0]:
            best = (cost, m, s)
    return best[1], best[2]


def _chunks(m: int) -> list[tuple[int, int]]:
    """(shift, width) of m contiguous bit ranges covering the 64 bits, as even as possible."""
    edges = [round(k * BITS / m) for k in range(m + 1)]
    return [(lo, hi - lo) for lo, hi in zip(edges[:-1], edges[1:], strict=False)]


def _spread(h: np.ndarray, m: int) -> np.ndarray:
    """The hashes with their bits reordered so that each chunk takes every m-th bit.

    Hamming distances do not change under a fixed bit permutation, but phash bits are far
    from independent (neighbouring DCT coefficients, a DC bit that is nearly always set):
    contiguous chunks would crowd a few keys, interleaved ones spread them (measured on MNIST:
    8x fewer candidates).
    """
    if m == 1:
        return h
    source = sorted(range(BITS), key=lambda k: (k % m, k // m))
    dest = np.empty(BITS, dtype=np.uint64)
    dest[source] = np.arange(BITS, dtype=np.uint64)
    # one lookup table per input byte: eight gathers instead of 64 shift-and-mask passes
    out = np.zeros_like(h)
    values = np.arange(256, dtype=np.uint64)
    for byte in range(8):
        table = np.zeros(256, dtype=np.uint64)
        for bit in range(8):
            table |= ((values >> np.uint64(bit)) & np.uint64(1)) << dest[8 * byte + bit]
        out |= table[((h >> np.uint64(8 * byte)) & np.uint64(255)).astype(np.intp)]
    return out


def _mask(width: int) -> np.uint64:
    return np.uint64((1 << width) - 1)


def _flips(width: int, s: int) -> np.ndarray:
    """Every width-bit pattern with at most s bits set (the probes around a key)."""
    out = [0]
    for k in range(1, s + 1):
        out.extend(sum(1 << b for b in bits) for bits in itertools.combinations(range(width), k))
    return np.array(out, dtype=np.uint64)


def _blocks(counts: np.ndarray) -> Iterator[tuple[int, int]]:
    """Split positions [0, len) into slices whose summed ``counts`` stay near BLOCK_PAIRS."""
    if counts.size == 0:
        return
    cum = np.cumsum(counts, dtype=np.int64)
    if int(cum[-1]) == 0:
        return
    start, n = 0, counts.size
    while start < n:
        base = int(cum[start - 1]) if start else 0
        stop = max(int(np.searchsorted(cum, base + BLOCK_PAIRS, side="right")), start + 1)
        yield start, min(stop, n)
        start = stop


class _Buckets:
    """Positions of ``keys`` grouped by value, for range lookups of many probe keys at once."""

    def __init__(self, keys: np.ndarray, width: int) -> None:
        self.order = np.argsort(keys, kind="stable")
        self.sorted = keys[self.order]
        # narrow keys: a direct table of bucket starts (a cumulative count over the key space)
        # turns every lookup into one gather
        self.table = None
        if width <= DIRECT_BITS:
            counts = np.bincount(keys.astype(np.intp), minlength=1 << width)
            self.table = np.concatenate(([0], np.cumsum(counts)))

    def ranges(self, probe: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.table is not None:
            idx = probe.astype(np.int64)
            left = self.table[idx]
            return left, self.table[idx + 1] - left
        left = np.searchsorted(self.sorted, probe, side="left")
        return left, np.searchsorted(self.sorted, probe, side="right") - left


def hamming_pairs(a: np.ndarray, b: np.ndarray | None, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(i, j)`` of every pair of 64-bit hashes within Hamming distance ``radius``.

    With ``b`` None the pairs are within ``a`` with ``i < j``; otherwise ``i`` indexes ``a`` and
    ``j`` indexes ``b``. Pairs come sorted by (i, j), each once. The cost grows with the number
    of hashes and of candidate pairs sharing a chunk key, not with the square of the count;
    memory stays bounded by verifying candidates in blocks.

    Raises:
        ConfigError: when ``radius`` is not in [0, 63] or the hashes are not 1-d integers.
    """
    _check_radius(radius)
    radius = int(radius)
    ha = _as_hashes(a, "a")
    same = b is None
    hb = ha if same else _as_hashes(b, "b")
    out_i: list[np.ndarray] = []
    out_j: list[np.ndarray] = []
    if ha.size == 0 or hb.size == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty.copy()
    m, s = _plan(radius, max(ha.size, hb.size))
    chunks = _chunks(m)
    ha = _spread(ha, m)
    hb = ha if same else _spread(hb, m)
    for c, (shift, width) in enumerate(chunks):
        mask = _mask(width)
        sh = np.uint64(shift)
        buckets = _Buckets((hb >> sh) & mask, width)
        ka = (ha >> sh) & mask
        for flip in _flips(width, s):
            left, counts = buckets.ranges(ka ^ flip)
            for lo, hi in _blocks(counts):
                cnt = counts[lo:hi]
                i = np.repeat(np.arange(lo, hi, dtype=np.int64), cnt)
                offs = np.arange(i.size, dtype=np.int64) - np.repeat(np.cumsum(cnt) - cnt, cnt)
                j = buckets.order[left[i] + offs]
                if same:
                    keep = i < j
                    i, j = i[keep], j[keep]
                x = ha[i] ^ hb[j]
                ok = np.bitwise_count(x) <= radius
                # a pair close on an earlier chunk was reported there
                for eshift, ewidth in chunks[:c]:
                    ok &= np.bitwise_count((x >> np.uint64(eshift)) & _mask(ewidth)) > s
                out_i.append(i[ok])
                out_j.append(j[ok])
    if not out_i:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty.copy()
    i = np.concatenate(out_i)
    j = np.concatenate(out_j).astype(np.int64, copy=False)
    order = np.lexsort((j, i))
    return i[order], j[order]


# A candidate pair (phash within the radius) is confirmed by its 8x8 grey thumbnails, each
# standardised to mean 0 and RMS 1: their RMS difference must not exceed this. Measured on the
# embedded example (benchmarks/dedup.py --catch): resized (2x) and JPEG re-encoded copies stay
# below 0.08, while distinct MNIST "1"s within phash radius 2 of each other are above 0.095 in 99%
# of pairs, so distinct images no longer chain into one group through intermediate ones.
THUMB_RMS = 0.09
THUMB_SIZE = 8  # side of the thumbnail (64 grey levels per image)


def _standardised(thumbs: np.ndarray) -> np.ndarray:
    t = thumbs.reshape(thumbs.shape[0], -1).astype(np.float32)
    t -= t.mean(axis=1, keepdims=True)
    rms = np.sqrt(np.mean(t * t, axis=1, keepdims=True))
    return t / np.where(rms > 1e-6, rms, 1.0)


def _expand(start: np.ndarray, count: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (a, b) with a in bucket u and b in bucket v, for each pair of buckets (u, v)."""
    cu, cv = count[u], count[v]
    k = cu * cv
    pair = np.repeat(np.arange(u.size), k)
    offs = np.arange(pair.size, dtype=np.int64) - np.repeat(np.cumsum(k) - k, k)
    return start[u][pair] + offs // cv[pair], start[v][pair] + offs % cv[pair]


def _confirmed_pairs(h: np.ndarray, thumbs: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of rows whose hashes are within ``radius`` and whose thumbnails agree (``THUMB_RMS``)."""
    t = _standardised(thumbs)
    order = np.argsort(h, kind="stable")
    uniq, start, count = np.unique(h[order], return_index=True, return_counts=True)
    same = np.flatnonzero(count > 1)
    ui, uj = hamming_pairs(uniq, None, radius) if radius > 0 and uniq.size > 1 else (same[:0], same[:0])
    a1, b1 = _expand(start, count, ui, uj)
    a2, b2 = _expand(start, count, same, same)
    keep = a2 < b2  # within one bucket: each unordered pair once
    a = order[np.r_[a1, a2[keep]]]
    b = order[np.r_[b1, b2[keep]]]
    ok = np.zeros(a.size, bool)
    for lo in range(0, a.size, BLOCK_PAIRS // 8):
        d = t[a[lo : lo + BLOCK_PAIRS // 8]] - t[b[lo : lo + BLOCK_PAIRS // 8]]
        ok[lo : lo + BLOCK_PAIRS // 8] = np.mean(d * d, axis=1) <= THUMB_RMS**2
    return a[ok], b[ok]


def group_ids(
    keys: Sequence[str],
    hashes: np.ndarray,
    radius: int,
    exact: Sequence[str] | None = None,
    thumbs: np.ndarray | None = None,
) -> list[str]:
    """The near-duplicate group of each item: the key of the group's first member in order.

    Items whose hashes are within ``radius`` bits are linked, and so are items with equal
    ``exact`` keys (e.g. sha256 of the bytes); groups are the connected components. With
    ``thumbs`` (one 8x8 grey thumbnail per item, uint8 of shape (n, 64)) a pair of hashes within
    the radius, equal hashes included, is linked only when the thumbnails confirm it
    (``THUMB_RMS``): the hash alone links distinct look-alikes, which then chain into groups of
    hundreds of different pictures. Because a group is named after its earliest member, a
    caller that orders items by (drop, image_id) never sees an existing group renamed when later
    images join it.

    Raises:
        ConfigError: when the lengths differ or ``radius`` is out of range.
    """
    _check_radius(radius)
    n = len(keys)
    h = _as_hashes(hashes, "hashes")
    if h.size != n or (exact is not None and len(exact) != n) or (thumbs is not None and len(thumbs) != n):
        raise ConfigError(
            f"group_ids needs one hash{' and one exact key' if exact is not None else ''} per key: "
            f"got {n} keys, {h.size} hashes{'' if exact is None else f', {len(exact)} exact keys'}"
            f"{'' if thumbs is None else f', {len(thumbs)} thumbnails'}."
        )
    if n == 0:
        return []
    src_idx = [np.arange(n)]
    dst_idx = [np.arange(n)]
    if thumbs is not None:
        ci, cj = _confirmed_pairs(h, np.asarray(thumbs), radius)
        src_idx.append(ci)
        dst_idx.append(cj)
    else:
        # Equal hashes are linked directly and the search runs over distinct hashes only: a
        # thousand copies of one picture cost one entry, not half a million pairs.
        uniq, first, inverse = np.unique(h, return_index=True, return_inverse=True)
        src_idx.append(first[inverse.ravel()])
        dst_idx.append(np.arange(n))
        if radius > 0 and uniq.size > 1:
            ui, uj = hamming_pairs(uniq, None, radius)
            src_idx.append(first[ui])
            dst_idx.append(first[uj])
    if exact is not None:
        _, efirst, einv = np.unique(np.asarray(exact, dtype=object).astype(str), return_index=True, return_inverse=True)
        src_idx.append(efirst[einv.ravel()])
        dst_idx.append(np.arange(n))
    rows = np.concatenate(src_idx)
    cols = np.concatenate(dst_idx)
    graph = coo_matrix((np.ones(rows.size, dtype=np.int8), (rows, cols)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    # name each component after its smallest index, i.e. its first member in the given order
    lowest = np.full(comp.max() + 1, n, dtype=np.int64)
    np.minimum.at(lowest, comp, np.arange(n))
    return [keys[r] for r in lowest[comp].tolist()]


# --- confirming a near copy from the pixels ---------------------------------------------------------
# A phash match (or an 8x8 thumbnail) says only that two images share their coarse layout: a
# low-detail image (a blurry, upsampled 8x8 digit) shares it with many distinct pictures. The gate
# of ``shiftkit check`` therefore confirms each near pair from the pixels, strictly, at the detail
# the two images share: both are reduced to the smaller image's size (at most COMPARE_SIDE a side)
# and compared there. A copy (re-encoded, resized, lightly blurred, recompressed) keeps the same
# picture at that size: high correlation and a small mean difference. Thresholds measured by
# ``benchmarks/dedup.py --confirm`` (copies and distinct look-alikes of MNIST, load_digits and
# rendered digits; figures in its docstring).
COMPARE_SIDE = 64  # longest side the two images are compared at (the smaller image's, if smaller)
COPY_CORRELATION = 0.97  # Pearson correlation of the two grey images at that size, at least
COPY_DIFFERENCE = 0.08  # mean absolute grey difference (0..1 of the full range), at most
# the low-detail guard: with less detail than this many pixels (smaller than 12 x 12), chance
# correlations run high (distinct 8x8 load_digits within 4 phash bits: 21% above 0.97, 3% above
# 0.98), so the correlation must reach LOW_DETAIL_CORRELATION
LOW_DETAIL_PIXELS = 144
LOW_DETAIL_CORRELATION = 0.98
LOW_DETAIL = 0.02  # grey standard deviation (0..1) below which an image has no detail to correlate


def closeness(a: np.ndarray, b: np.ndarray) -> tuple[float, float, int]:
    """(correlation, mean absolute difference in [0, 1], pixels of detail) of two uint8 images
    (grey or RGB), compared at the detail they share: the smaller image's.

    Two ways are tried and the closer one kept: the larger image reduced to the smaller one's size
    (a copy made by shrinking), and the smaller one enlarged bilinearly to the larger one's size (a
    copy made by enlarging, whose interpolation a reduction would not undo). Either way the smaller
    image's detail is all there is to match, and sides are capped at ``COMPARE_SIDE``. The
    correlation is that of the grey levels (gain and offset do not change it); an image with no
    detail (grey standard deviation below ``LOW_DETAIL``) has correlation 1 with another such image
    and 0 with any other, so two flat images are told apart by their difference alone.
    """
    import cv2

    ga, gb = (_grey(x) for x in (a, b))
    small, large = (ga, gb) if ga.size <= gb.size else (gb, ga)
    best = (-1.0, 1.0)
    for h, w in (small.shape, large.shape):
        scale = min(1.0, COMPARE_SIDE / max(h, w))
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        best = max(best, _compare(_resized(small, size, cv2), _resized(large, size, cv2)), key=lambda cd: cd[0] - cd[1])
        if small.shape == large.shape:
            break
    return best[0], best[1], int(small.size)


def _compare(fa: np.ndarray, fb: np.ndarray) -> tuple[float, float]:
    mad = float(np.mean(np.abs(fa - fb)))
    sa, sb = float(fa.std()), float(fb.std())
    if sa < LOW_DETAIL or sb < LOW_DETAIL:
        return (1.0 if sa < LOW_DETAIL and sb < LOW_DETAIL else 0.0), mad
    return float(np.mean((fa - fa.mean()) * (fb - fb.mean())) / (sa * sb)), mad


def is_copy(correlation: float, difference: float, pixels: int = LOW_DETAIL_PIXELS) -> bool:
    """Whether a pair's ``closeness`` confirms a near copy (stricter below ``LOW_DETAIL_PIXELS``)."""
    need = LOW_DETAIL_CORRELATION if pixels < LOW_DETAIL_PIXELS else COPY_CORRELATION
    return correlation >= need and difference <= COPY_DIFFERENCE


def _grey(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return x.astype(np.float32) / 255.0


def _resized(g: np.ndarray, size: tuple[int, int], cv2) -> np.ndarray:
    if (g.shape[1], g.shape[0]) == size:
        return g
    interp = cv2.INTER_AREA if g.shape[1] >= size[0] and g.shape[0] >= size[1] else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(g), size, interpolation=interp)
