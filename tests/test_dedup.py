import numpy as np
import pytest
from PIL import Image

from shiftkit.core.errors import ConfigError
from shiftkit.images import decode as images
from shiftkit.images import dedup
from tests import helpers


def _brute(a, b, radius):
    d = np.bitwise_count(a[:, None] ^ (a if b is None else b)[None, :])
    hit = d <= radius
    if b is None:
        hit = np.triu(hit, 1)
    return np.nonzero(hit)


def _clustered(seed, n_base=200):
    """Random hashes plus copies of them with 1..6 bits flipped: pairs at every distance."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**63, n_base, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    out = [base]
    for flips in (1, 2, 4, 6):
        noisy = base.copy()
        for _ in range(flips):
            noisy ^= np.uint64(1) << rng.integers(0, 64, n_base).astype(np.uint64)
        out.append(noisy)
    out.append(base[:15])  # exact copies
    return np.concatenate(out)


@pytest.mark.parametrize("radius", [0, 1, 3, 4, 6, 10], ids=lambda r: f"r{r}")
def test_pairs_within_one_set_match_brute_force(radius):
    h = _clustered(radius)
    i, j = dedup.hamming_pairs(h, None, radius)
    bi, bj = _brute(h, None, radius)
    assert np.array_equal(i, bi) and np.array_equal(j, bj)
    assert (i < j).all()


@pytest.mark.parametrize("radius", [0, 2, 4], ids=lambda r: f"r{r}")
def test_pairs_across_two_sets_match_brute_force(radius):
    h = _clustered(100 + radius)
    a, b = h[:600], h[500:]
    i, j = dedup.hamming_pairs(a, b, radius)
    bi, bj = _brute(a, b, radius)
    assert np.array_equal(i, bi) and np.array_equal(j, bj)


def test_crowded_bucket_is_verified_in_bounded_blocks(monkeypatch):
    # 3,000 hashes that agree on their top 40 bits: every chunk key there collides
    monkeypatch.setattr(dedup, "BLOCK_PAIRS", 10_000)
    rng = np.random.default_rng(1)
    h = (np.uint64(0xABCDEF1234) << np.uint64(24)) | rng.integers(0, 1 << 24, 3000).astype(np.uint64)
    i, j = dedup.hamming_pairs(h, None, 3)
    bi, bj = _brute(h, None, 3)
    assert np.array_equal(i, bi) and np.array_equal(j, bj)


def test_real_mnist_pairs_match_brute_force():
    x, _ = helpers.mnist(1500)
    h = np.array([images.phash(images.working_image(a)) for a in x], dtype=np.uint64)
    i, j = dedup.hamming_pairs(h, None, 4)
    bi, bj = _brute(h, None, 4)
    assert len(i) > 0
    assert np.array_equal(i, bi) and np.array_equal(j, bj)


def test_group_ids_are_named_after_the_first_member_and_chain():
    # 0 ~ 2 (1 bit), 2 ~ 3 (1 bit): 0, 2, 3 form one group through 2 even though 0 and 3 differ by 2
    h = np.array([0b0000, 0xFFFF_0000_0000, 0b0001, 0b0011, 0xFFFF_0000_0000], dtype=np.uint64)
    keys = ["a", "b", "c", "d", "e"]
    assert dedup.group_ids(keys, h, 1) == ["a", "b", "a", "a", "b"]
    assert dedup.group_ids(keys, h, 0) == ["a", "b", "c", "d", "b"]


def test_group_ids_join_exact_keys_and_never_rename_old_groups():
    h = np.array([1 << 40, 7, 1 << 50], dtype=np.uint64)
    assert dedup.group_ids(["x", "y", "z"], h, 2, exact=["s1", "s2", "s1"]) == ["x", "y", "x"]
    # a later image bridging two old groups joins the first; the older name wins
    old = dedup.group_ids(["p", "q"], np.array([0b0000, 0b1111], dtype=np.uint64), 2)
    new = dedup.group_ids(["p", "q", "r"], np.array([0b0000, 0b1111, 0b0011], dtype=np.uint64), 2)
    assert old == ["p", "q"] and new == ["p", "p", "p"]


@pytest.mark.parametrize(
    "args, match",
    [
        ((np.zeros(3, np.uint64), None, -1), "radius.*integer in \\[0, 63\\]. Got -1"),
        ((np.zeros((2, 2), np.uint64), None, 1), "1-d array"),
        ((np.zeros(3, np.float64), None, 1), "must hold integers"),
    ],
    ids=["negative-radius", "2d", "float"],
)
def test_bad_arguments_raise(args, match):
    with pytest.raises(ConfigError, match=match):
        dedup.hamming_pairs(*args)


def test_group_ids_length_mismatch():
    with pytest.raises(ConfigError, match="one hash per key: got 2 keys, 3 hashes"):
        dedup.group_ids(["a", "b"], np.zeros(3, np.uint64), 1)


def test_empty_inputs():
    i, j = dedup.hamming_pairs(np.zeros(0, np.uint64), None, 4)
    assert i.size == 0 and j.size == 0
    assert dedup.group_ids([], np.zeros(0, np.uint64), 4) == []


def test_thumbnails_confirm_pairs_so_distinct_look_alikes_do_not_chain():
    rng = np.random.default_rng(3)
    # a chain of hashes one bit apart (all linked by the phash alone) ...
    chain = np.array([(1 << k) - 1 for k in range(12)], dtype=np.uint64)
    distinct = rng.integers(0, 256, (12, 64), dtype=np.uint8)  # ... of twelve different pictures
    keys = [f"k{i:02d}" for i in range(12)]
    assert len(set(dedup.group_ids(keys, chain, 2))) == 1
    assert dedup.group_ids(keys, chain, 2, thumbs=distinct) == keys
    # a re-encoded copy (a little noise on the same thumbnail) is still confirmed, equal hash or not
    noisy = np.clip(distinct[:3].astype(int) + rng.integers(-2, 3, (3, 64)), 0, 255).astype(np.uint8)
    h = np.r_[chain[:3], chain[0], chain[1] ^ np.uint64(1 << 40), chain[2]]
    got = dedup.group_ids([*keys[:3], "c0", "c1", "c2"], h, 2, thumbs=np.r_[distinct[:3], noisy])
    assert got == ["k00", "k01", "k02", "k00", "k01", "k02"]


def test_thumbnails_on_real_copies_group_copies_and_split_look_alike_ones():
    x, _ = helpers.mnist(400)
    works = [images.working_grey(a) for a in x]
    copies = [images.working_grey(np.asarray(Image.fromarray(a).resize((56, 56), Image.BICUBIC))) for a in x]
    h = np.array([images.phash(images.working_image(w)) for w in works + copies], dtype=np.uint64)
    thumbs = np.stack([np.frombuffer(images.thumbnail(w), np.uint8) for w in works + copies])
    keys = [f"o{i:03d}" for i in range(400)] + [f"c{i:03d}" for i in range(400)]
    plain = dedup.group_ids(keys, h, 2)
    confirmed = dedup.group_ids(keys, h, 2, thumbs=thumbs)
    caught = np.mean([confirmed[i] == confirmed[400 + i] for i in range(400)])
    assert caught >= np.mean([plain[i] == plain[400 + i] for i in range(400)]) - 0.01 and caught > 0.95
    assert max(map(confirmed.count, set(confirmed))) <= max(map(plain.count, set(plain)))


# --- the pixel confirmation of near copies (check's gate; issue 25 finding 11) -----------------------


def test_closeness_keeps_real_copies_and_refuses_look_alikes_with_the_same_phash():
    import benchmarks.dedup as bench

    x, y = helpers.digits(60)
    for a in x[:30]:  # low detail (8x8): re-encoded and resized copies are still copies
        for kind in ("JPEG q50", "2x bilinear + JPEG q90", "2x bicubic + JPEG q75", "brightness +20"):
            c = bench.copies_of(a)[kind]
            assert dedup.is_copy(*dedup.closeness(a, c)), (kind, dedup.closeness(a, c))
    mx = helpers.mnist(30, 30000)[0]
    for a in mx:
        for kind in ("JPEG q50", "half size", "blur sigma 0.5", "JPEG 80 -> 70 -> 60"):
            assert dedup.is_copy(*dedup.closeness(a, bench.copies_of(a)[kind])), kind
    targets = bench.blurry_targets(x)
    looks = [bench.printed_on(t, (int(lab) + 1) % 10) for t, lab in zip(targets, y, strict=True)]
    pairs = list(zip(looks, targets, strict=True))
    bits = [images.hamming(bench._phashes(p[None])[0], bench._phashes(t[None])[0]) for p, t in pairs]
    assert np.mean(np.array(bits) <= 2) > 0.9  # the hash alone calls them copies ...
    assert not any(dedup.is_copy(*dedup.closeness(p, t)) for p, t in pairs)  # ... the pixels do not


def test_closeness_compares_at_the_smaller_images_detail_with_a_low_detail_guard():
    flat_a, flat_b = np.full((8, 8), 100, np.uint8), np.full((64, 64), 101, np.uint8)
    c, d, n = dedup.closeness(flat_a, flat_b)
    assert (c, n) == (1.0, 64) and d < 0.01 and dedup.is_copy(c, d, n)  # two flat images: by their difference
    assert not dedup.is_copy(*dedup.closeness(flat_a, np.full((8, 8), 200, np.uint8)))
    ramp = np.tile(np.arange(0, 256, 32, dtype=np.uint8), (8, 1))
    assert dedup.closeness(flat_a, ramp)[0] == 0.0  # no detail against detail: never a copy
    assert not dedup.is_copy(0.975, 0.01, 64) and dedup.is_copy(0.975, 0.01, 400)  # the guard below 12 x 12
