from __future__ import annotations

import numpy as np
import pytest

from shiftkit.core.errors import ConfigError, DataError
from shiftkit.stats import bootstrap as bs
from shiftkit.stats import decompose as dc
from tests.report_helpers import make_predictions


def _decompose(spec, **kw):
    return dc.decompose(bs.split_counts(make_predictions(spec)), kw.pop("human", 0.01), **kw)


@pytest.mark.parametrize(
    ("rates", "variance", "mismatch", "diagnosis"),
    [((0.02, 0.09, 0.10), 0.07, 0.01, "variance"), ((0.02, 0.03, 0.10), 0.01, 0.07, "data_mismatch")],
    ids=["example-A-variance", "example-B-data-mismatch"],
)
def test_design_examples(rates, variance, mismatch, diagnosis):
    n = 2000
    spec = {"train": (n, rates[0]), "bridge": (n, rates[1]), "dev": (n, rates[2]), "test": (n, rates[2])}
    d = _decompose(spec)
    assert d.errors["train"] == pytest.approx(rates[0])
    assert d.gaps["variance"].value == pytest.approx(variance)
    assert d.gaps["data_mismatch"].value == pytest.approx(mismatch)
    assert d.diagnosis == diagnosis
    assert d.gaps[diagnosis].claimed and d.gaps[diagnosis].p_adjusted <= 0.05
    for g in d.gaps.values():
        assert g.ci_low <= g.value <= g.ci_high


def test_intervals_are_deterministic_and_seeded():
    spec = {"train": (500, 0.05), "bridge": (500, 0.1), "dev": (400, 0.2), "test": (400, 0.2)}
    a, b = _decompose(spec, seed=3), _decompose(spec, seed=3)
    c = _decompose(spec, seed=4)
    assert a.gaps == b.gaps
    assert a.gaps["variance"].ci_low != c.gaps["variance"].ci_low


def test_zero_errors_still_give_an_interval():
    d = _decompose({"train": (300, 0.0), "bridge": (300, 0.0)}, human=0.0)
    g = d.gaps["avoidable_bias"]
    assert g.value == 0.0 and g.ci_high > 0.0


def test_higher_level_gives_wider_intervals():
    spec = {"train": (500, 0.05), "bridge": (500, 0.1)}
    w90 = _decompose(spec, level=0.9).gaps["variance"]
    w99 = _decompose(spec, level=0.99).gaps["variance"]
    assert w99.ci_high - w99.ci_low > w90.ci_high - w90.ci_low


def test_missing_split_names_the_gaps_it_blocks():
    d = _decompose({"train": (500, 0.05), "bridge": (500, 0.1), "test": (500, 0.2)})
    assert d.gaps["data_mismatch"].value is None and d.gaps["data_mismatch"].missing == ("dev",)
    assert d.gaps["dev_overfit"].missing == ("dev",)
    assert d.gaps["variance"].value == pytest.approx(0.05)
    assert d.missing_splits == ("dev",)


def test_inconclusive_estimates_how_many_more_images_resolve_the_largest_gap():
    spec = {"train": (400, 0.05), "bridge": (400, 0.06), "dev": (60, 0.12), "test": (60, 0.12)}
    d = _decompose(spec, human=0.04)
    assert d.diagnosis == dc.INCONCLUSIVE
    r = d.resolve
    assert r.gap == "data_mismatch" and r.split in ("dev", "bridge") and r.more_images > 0
    # adding that many images at the same error rates does resolve the gap
    grown = dict(spec)
    n0, e0 = spec[r.split]
    grown[r.split] = (n0 + r.more_images, e0)
    assert _decompose(grown, human=0.04).diagnosis == "data_mismatch"


@pytest.mark.parametrize("human", [-0.1, 1.0, 1.5, float("nan")], ids=["negative", "one", "above-one", "nan"])
def test_human_error_outside_unit_interval_is_refused(human):
    with pytest.raises(ConfigError, match=r"'human_error' parameter of report must be a fraction in \[0, 1\)"):
        dc.decompose({"train": bs.SplitCount(10, 1)}, human)


def test_unknown_split_and_empty_table_are_refused():
    df = make_predictions({"train": (10, 0.1)})
    import polars as pl

    with pytest.raises(DataError, match="unknown split name.*'valid'"):
        bs.split_counts(df.with_columns(split=pl.lit("valid")))
    with pytest.raises(DataError, match="no rows"):
        bs.split_counts(df.head(0))


@pytest.mark.parametrize(
    ("truth", "n"),
    [((0.04, 0.10, 0.14, 0.15), 500), ((0.02, 0.03, 0.10, 0.10), 400)],
    ids=["moderate-errors-500", "few-train-errors-400"],
)
def test_coverage_of_95_percent_intervals(truth, n):
    """Over 1,000 simulated runs with known error rates, each gap's 95% interval holds the truth
    in 93% to 97% of them. Error counts are drawn as the images' outcomes would fall; the
    decomposition itself is the library's."""
    human = 0.01
    rng = np.random.default_rng(12345)
    sims = 1000
    k = rng.binomial(n, truth, size=(sims, 4))
    true_gaps = {
        "avoidable_bias": truth[0] - human,
        "variance": truth[1] - truth[0],
        "data_mismatch": truth[2] - truth[1],
        "dev_overfit": truth[3] - truth[2],
    }
    hits = {g: 0 for g in true_gaps}
    for i in range(sims):
        counts = {s: bs.SplitCount(n, int(k[i, j])) for j, s in enumerate(("train", "bridge", "dev", "test"))}
        d = dc.decompose(counts, human, replicates=1000, seed=i)
        for g, t in true_gaps.items():
            hits[g] += d.gaps[g].ci_low <= t <= d.gaps[g].ci_high
    coverage = {g: h / sims for g, h in hits.items()}
    print("coverage", n, truth, coverage)
    for g, c in coverage.items():
        assert 0.93 <= c <= 0.97, (g, c)


def test_compare_pairs_shared_images_and_detects_a_shrinking_mismatch():
    before = make_predictions({"train": (1000, 0.02), "bridge": (1000, 0.03), "dev": (800, 0.15)}, seed=1)
    after = make_predictions({"train": (1000, 0.02), "bridge": (1000, 0.04), "dev": (800, 0.06)}, seed=2)
    db, da = (dc.decompose(bs.run_table(x), 0.0) for x in (before, after))
    joint = bs.joint_table(before, after)
    # the same image ids in both runs: one stratum per split, each cluster drawn for both runs at once
    assert {st.mask for st in joint.strata} == {0b1001, 0b10010, 0b100100}
    ch = dc.compare(da, db, joint)
    assert ch["data_mismatch"].value == pytest.approx(0.02 - 0.12)
    assert ch["data_mismatch"].verdict == "shrank"
    assert ch["dev_overfit"].verdict == "not computable"
    same = dc.compare(db, db, bs.joint_table(before, before))
    # the same run against itself: no change, and a tight interval because dev is paired
    assert same["dev"].value == 0 and same["dev"].verdict == "no clear change"
    assert same["dev"].ci_high - same["dev"].ci_low < 0.01
    unpaired = dc.compare(db, db)
    assert unpaired["dev"].ci_high - unpaired["dev"].ci_low > 0.03


def test_synthesised_children_count_only_when_asked():
    import polars as pl

    df = make_predictions({"train": (100, 0.0), "bridge": (100, 0.0)})
    synth = make_predictions({"bridge": (50, 0.2)}, domain={"bridge": "synth"}, id_prefix="s")
    both = pl.concat([df, synth])
    assert bs.split_counts(both)["bridge"] == bs.SplitCount(150, 10)
    assert bs.split_counts(both, include_synth=False)["bridge"] == bs.SplitCount(100, 0)


def _paired_table(n_br: int, k_br: tuple[int, int], cells: np.ndarray) -> bs.ClusterTable:
    """Runs a (before) and b (after): bridge on different images, dev on the same images (paired)."""
    cols = ("a:bridge", "a:dev", "b:bridge", "b:dev")

    def stratum(mask, rows, weight):
        n = np.zeros((len(rows), 4), np.int64)
        k = np.zeros_like(n)
        for r, (nn, kk) in enumerate(rows):
            n[r], k[r] = nn, kk
        return bs.Stratum(mask, n, k, np.asarray(weight, np.int64))

    br_a = stratum(0b0001, [((1, 0, 0, 0), (0, 0, 0, 0)), ((1, 0, 0, 0), (1, 0, 0, 0))], [n_br - k_br[0], k_br[0]])
    br_b = stratum(0b0100, [((0, 0, 1, 0), (0, 0, 0, 0)), ((0, 0, 1, 0), (0, 0, 1, 0))], [n_br - k_br[1], k_br[1]])
    one = (0, 1, 0, 1)
    dev = stratum(0b1010, [(one, (0, 1, 0, 1)), (one, (0, 1, 0, 0)), (one, (0, 0, 0, 1)), (one, (0, 0, 0, 0))], cells)
    return bs.ClusterTable(cols, (br_a, dev, br_b))


@pytest.mark.slow
def test_coverage_of_compare_intervals_with_paired_dev():
    """Two runs on the same dev images (paired) and on different bridge images: the 95% interval
    of the change in dev error and in data mismatch holds the true change in 93% to 97% of 1,000
    simulated pairs of runs."""
    rng = np.random.default_rng(5)
    sims, n_dev, n_br = 1000, 400, 400
    cells = np.array([0.08, 0.10, 0.03, 0.79])  # both wrong, only before wrong, only after wrong, neither
    p_before, p_after = cells[0] + cells[1], cells[0] + cells[2]
    br_before, br_after = 0.03, 0.05
    truth = {"dev": p_after - p_before, "data_mismatch": (p_after - br_after) - (p_before - br_before)}
    hits = dict.fromkeys(truth, 0)
    for i in range(sims):
        c = rng.multinomial(n_dev, cells)
        kb = (int(rng.binomial(n_br, br_before)), int(rng.binomial(n_br, br_after)))
        before = {"bridge": bs.SplitCount(n_br, kb[0]), "dev": bs.SplitCount(n_dev, int(c[0] + c[1]))}
        after = {"bridge": bs.SplitCount(n_br, kb[1]), "dev": bs.SplitCount(n_dev, int(c[0] + c[2]))}
        ch = dc.compare(dc.decompose(after, 0.0, seed=i), dc.decompose(before, 0.0, seed=i), _paired_table(n_br, kb, c))
        for k, t in truth.items():
            hits[k] += ch[k].ci_low <= t <= ch[k].ci_high
    coverage = {k: h / sims for k, h in hits.items()}
    print("compare coverage", coverage)
    for k, c in coverage.items():
        assert 0.93 <= c <= 0.97, (k, c)
