"""Property-based tests of the split invariants (hypothesis)."""

from __future__ import annotations

import hashlib
import warnings

import polars as pl
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from shiftkit import splits
from shiftkit.core.errors import DataError
from shiftkit.splits.params import SplitParams

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True)


@st.composite
def manifests(draw, min_groups: int = 20, max_groups: int = 150, tag: str = "a"):
    """Manifests of groups of 1-4 copies; copies share a label and (mostly) a domain."""
    groups = draw(
        st.lists(
            st.tuples(
                st.sampled_from([1, 1, 1, 2, 3, 4]),
                st.sampled_from(["web", "target", "target"]),
                st.integers(0, 3),
                st.booleans(),
            ),
            min_size=min_groups,
            max_size=max_groups,
        )
    )
    rows = []
    for g, (size, domain, label, crosses) in enumerate(groups):
        gid = hashlib.sha256(f"{tag}-g{g}".encode()).hexdigest()
        for k in range(size):
            # now and then a copy crosses domains (a web image scraped from the target app)
            d = "web" if (k == 1 and crosses and domain == "target") else domain
            rows.append(
                {
                    "image_id": hashlib.sha256(f"{tag}-g{g}-{k}".encode()).hexdigest(),
                    "domain": d,
                    "label": str(label),
                    "dup_group": gid,
                }
            )
    schema = {"image_id": pl.String, "domain": pl.String, "label": pl.String, "dup_group": pl.String}
    return pl.DataFrame(rows, schema=schema)


def sizes(draw_frac):
    return st.one_of(st.sampled_from([0.1, 0.2, 0.3]), st.integers(1, 8)) if draw_frac else st.integers(1, 8)


params_strategy = st.builds(
    SplitParams,
    strategy=st.sampled_from(["target", "shuffle"]),
    seed=st.integers(0, 2**31),
    dev=sizes(True),
    test=sizes(True),
    bridge=st.one_of(st.sampled_from([0.05, 0.1]), st.integers(1, 5)),
    min_per_label=st.integers(1, 4),
)


def _assign(m, p, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", splits.SplitWarning)
        return splits.assign(m, p, *args)


def _max_group(m: pl.DataFrame) -> int:
    return int(m.group_by("dup_group").len()["len"].max())


@SETTINGS
@given(m=manifests(), p=params_strategy)
def test_invariants_of_one_split(m, p):
    try:
        result = _assign(m, p)
    except DataError as exc:
        # only impossible requests may be refused
        event("refused: impossible request")
        assert any(
            w in str(exc)
            for w in (
                "images were asked for",
                "gives an empty",
                "whole training pool",
                "no image that can go",
                "not in the manifest",
                "set is empty",
            )
        ), exc
        return
    event("split")
    t = result.table
    assert t.height == m.height and t["image_id"].n_unique() == m.height
    # no group straddles splits
    assert t.group_by("group").agg(pl.col("split").n_unique())["split"].max() == 1
    # dev and test hold only target images under `target`
    if p.strategy == "target":
        assert set(t.filter(pl.col("split").is_in(["dev", "test"]))["domain"].unique().to_list()) <= {"target"}
    # sizes within the documented tolerance: never above the request, below it by at most
    # strata x (largest group - 1)
    target_only = t.group_by("group").agg((pl.col("domain") == "target").all().alias("t"), pl.len().alias("n"))
    available = int(target_only.filter(pl.col("t"))["n"].sum()) if p.strategy == "target" else t.height
    slack_hold = (m["label"].n_unique() + 1) * (_max_group(m) - 1)
    for name in ("dev", "test"):
        asked = splits.requested_size(getattr(p, name), available)
        got = t.filter(pl.col("split") == name).height
        assert asked - slack_hold <= got <= asked, (name, got, asked)
    pool = t.filter(pl.col("split").is_in(["train", "bridge"])).height
    asked = splits.requested_size(p.bridge, pool)
    slack_bridge = m["label"].n_unique() * m["domain"].n_unique() * (_max_group(m) - 1) + slack_hold
    assert asked - slack_bridge <= t.filter(pl.col("split") == "bridge").height <= asked


@SETTINGS
@given(
    old=manifests(tag="old"),
    new=manifests(min_groups=0, max_groups=60, tag="new"),
    p=params_strategy,
    join=st.booleans(),
)
def test_old_assignments_survive_appending(old, new, p, join):
    try:
        first = _assign(old, p)
    except DataError:
        return
    if join and new.height:
        # some new images are copies of old ones: they join an old group
        olds = old["dup_group"].unique().sort().to_list()
        new = new.with_columns(
            dup_group=pl.when(pl.int_range(pl.len()) % 3 == 0)
            .then(pl.Series([olds[i % len(olds)] for i in range(new.height)]))
            .otherwise("dup_group")
        )
    both = pl.concat([old, new])
    second = _assign(both, p, first.table, p.settings())  # appending never makes a request impossible
    before = dict(first.table.select("image_id", "split").iter_rows())
    after = dict(second.table.select("image_id", "split").iter_rows())
    assert all(after[k] == v for k, v in before.items())
    assert second.kept == old.height
    # a new copy of an old image takes the old image's split, unless it is an image of another
    # domain copying a dev/test image: then it is held out of every split
    groups = dict(first.table.select("group", "split").unique().iter_rows())
    for gid, split, domain in second.table.select("group", "split", "domain").iter_rows():
        if gid in groups:
            copies_held_out = p.strategy == "target" and groups[gid] in ("dev", "test") and domain != "target"
            assert split == ("held_out_copy" if copies_held_out else groups[gid])
    _assert_recipe_rules(second.table, p)
    held = second.table.filter(pl.col("split") == "held_out_copy")
    assert sorted(h["image_id"] for h in second.composition["held_out_copies"]) == sorted(held["image_id"])


def _assert_recipe_rules(t: pl.DataFrame, p: SplitParams) -> None:
    """Dev and test target-only (strategy target); no group on both sides; held-out copies idle."""
    inside = t.filter(pl.col("split") != "held_out_copy")
    side = pl.when(pl.col("split").is_in(["train", "bridge"])).then(0).otherwise(pl.col("split"))
    assert inside.group_by("group").agg(side.n_unique().alias("k"))["k"].max() == 1
    held = t.filter(pl.col("split") == "held_out_copy")
    if p.strategy == "target":
        assert set(inside.filter(pl.col("split").is_in(["dev", "test"]))["domain"].to_list()) <= {"target"}
        assert set(held["domain"].to_list()) <= {"web"}
        held_groups = held["group"].unique().implode()
        # the image each held-out copy copies is in dev or test, never in a training split
        assert set(inside.filter(pl.col("group").is_in(held_groups))["split"].to_list()) <= {"dev", "test"}
    else:
        assert held.height == 0


@settings(SETTINGS, max_examples=40)
@given(
    old=manifests(tag="old"),
    drops=st.lists(
        st.tuples(manifests(min_groups=0, max_groups=30, tag="d"), st.integers(0, 5)), min_size=1, max_size=3
    ),
    p=params_strategy,
)
def test_drops_of_copies_never_reach_dev_or_test(old, drops, p):
    """Drops whose web images copy random old images (dev/test ones included), applied in turn."""
    try:
        result = _assign(old, p)
    except DataError:
        return
    manifest = old
    for k, (new, every) in enumerate(drops):
        new = new.with_columns(pl.col("image_id") + f"-{k}", domain=pl.lit("web"))
        olds = manifest["dup_group"].unique().sort().to_list()
        if every and new.height:  # every `every`-th web image of the drop is a near copy of an old image
            copies = pl.Series([olds[(i * 7) % len(olds)] for i in range(new.height)])
            new = new.with_columns(
                dup_group=pl.when(pl.int_range(pl.len()) % every == 0).then(copies).otherwise("dup_group")
            )
        manifest = pl.concat([manifest, new])
        before = dict(result.table.select("image_id", "split").iter_rows())
        try:
            result = _assign(manifest, p, result.table, p.settings())
        except DataError as exc:  # copies shrank the target-only pool below what the sizes ask for
            assert any(w in str(exc) for w in ("gives an empty", "no image that can go", "images were asked for")), exc
            return
        after = dict(result.table.select("image_id", "split").iter_rows())
        assert all(after[i] == s for i, s in before.items())  # earlier images keep their split
        _assert_recipe_rules(result.table, p)
