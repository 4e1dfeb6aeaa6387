"""Learning curves: nested stratified budgets, arm splits and the worth-N estimator on simulated
curves whose answer is known by construction."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from shiftkit.core.errors import ConfigError, DataError, RegistryError
from shiftkit.curve import arms, budgets
from shiftkit.curve import worth as curve


def _tables(n_per_label: dict[str, int], web: int = 30):
    ids, labels, domains, splits = [], [], [], []
    for label, n in n_per_label.items():
        for i in range(n):
            ids.append(f"t{label}{i:04d}")
            labels.append(label)
            domains.append("target")
            splits.append("train")
    for i in range(web):
        ids.append(f"w{i:04d}")
        labels.append(str(i % 3))
        domains.append("web")
        splits.append("train")
    for i, s in enumerate(["dev", "test", "bridge"] * 4):
        ids.append(f"o{i:04d}")
        labels.append("0")
        domains.append("target")
        splits.append(s)
    manifest = pl.DataFrame({"image_id": ids, "label": labels, "domain": domains})
    spl = pl.DataFrame({"image_id": ids, "split": splits, "group": ids})
    return manifest, spl


def test_budgets_are_nested_stratified_seeded_and_leave_other_splits_alone():
    manifest, spl = _tables({"0": 60, "1": 30, "2": 10})
    pool = budgets.target_train(spl, manifest, "target")
    assert pool.height == 100
    order = budgets.draw_order(pool, seed=3)
    assert order.equals(budgets.draw_order(pool, seed=3))
    assert not order.equals(budgets.draw_order(pool, seed=4))
    kept = {}
    for b in (0, 10, 40, "all"):
        table = budgets.budget_splits(spl, order, b)
        assert table.columns == spl.columns and table.height == spl.height
        train = set(table.filter(pl.col("split") == "train")["image_id"])
        kept[b] = {i for i in train if i.startswith("t")}
        # web train rows and every bridge/dev/test row are untouched
        same = spl.join(table, on="image_id").filter(~pl.col("image_id").str.starts_with("t"))
        assert (same["split"] == same["split_right"]).all()
    assert [len(kept[b]) for b in (0, 10, 40, "all")] == [0, 10, 40, 100]
    assert kept[0] <= kept[10] <= kept[40] <= kept["all"]
    shares = pool.filter(pl.col("image_id").is_in(list(kept[40])))["label"].value_counts()
    counts = dict(zip(shares["label"], shares["count"], strict=True))
    # 60/30/10 of 40 is 24/12/4: each label within one image of its share
    assert abs(counts["0"] - 24) <= 1 and abs(counts["1"] - 12) <= 1 and abs(counts["2"] - 4) <= 1
    with pytest.raises(DataError, match="asks for 101 labelled target images"):
        budgets.budget_splits(spl, order, 101)


def test_finetune_trains_on_target_images_only():
    manifest, spl = _tables({"0": 5, "1": 5})
    table = budgets.budget_splits(spl, budgets.draw_order(budgets.target_train(spl, manifest, "target"), 0), 4)
    ft = arms.arm_splits(table, manifest, "finetune", "target")
    train = ft.filter(pl.col("split") == "train")["image_id"].to_list()
    assert len(train) == 4 and all(i.startswith("t") for i in train)
    assert arms.arm_splits(table, manifest, "synth", "target").equals(table)
    with pytest.raises(RegistryError, match="Unknown arm"):
        arms.arm_splits(table, manifest, "magic", "target")


def test_budget_lists_are_checked():
    assert budgets.check_budgets([300, "all", 0]) == (0, 300, "all")
    for bad in ([], [-1], [0, 0], ["most"], [True]):
        with pytest.raises(ConfigError):
            budgets.check_budgets(bad)
    assert budgets.parse_budget("all") == "all" and budgets.parse_budget("30") == 30
    with pytest.raises(ConfigError):
        budgets.parse_budget("-3")


# --- the worth-N estimator on simulated curves -------------------------------------------------

NS = np.array([0, 100, 300, 1000])


def _dev(wrong: int, n: int, rng=None, block: int = 1) -> pl.DataFrame:
    """Dev predictions of n images, ``wrong`` of them wrong (spread at random when rng is given, in
    whole blocks of ``block`` consecutive images)."""
    correct = np.ones(n, dtype=bool)
    if rng is None:
        idx = np.arange(wrong)
    else:
        idx = (rng.choice(n // block, wrong // block, replace=False)[:, None] * block + np.arange(block)).ravel()
    correct[idx] = False
    return pl.DataFrame({"image_id": [f"d{i:05d}" for i in range(n)], "correct": correct})


def _worth(baseline_wrong, arm_wrong, n=1000, index=0, clusters=None, seed=0, rng=None, block=1):
    runs = {f"b{i}": _dev(w, n, rng, block) for i, w in enumerate(baseline_wrong)}
    runs["arm"] = _dev(arm_wrong, n, rng, block)
    clusters = clusters if clusters is not None else pl.DataFrame(schema={"image_id": pl.String, "cluster": pl.String})
    m = curve.cluster_matrix(runs, clusters)
    k = len(baseline_wrong)
    point = m.error_rates()
    boot = curve.resample_errors(m, 1000, seed)
    arm_row = np.full(k, np.nan)
    arm_row[index] = point[-1]
    p = np.stack([point[:k], arm_row])
    b = np.stack([boot[:, :k], np.repeat(boot[:, [-1]], k, axis=1)], axis=1)
    return curve.worth("synth", str(NS[index]), index, NS, p, b)


def test_worth_reads_a_baseline_point_exactly():
    w = _worth([500, 200, 100, 50], 100, rng=np.random.default_rng(2))
    assert w.status == "estimate"
    assert w.images == pytest.approx(300.0)
    lo, hi = w.ci
    assert lo < 300 < hi and hi < 1000


def test_worth_interpolates_in_log_one_plus_n():
    # 15% lies halfway between 20% at 100 and 10% at 300 -> halfway between log(101) and log(301)
    w = _worth([500, 200, 100, 50], 150, rng=np.random.default_rng(3))
    assert w.images == pytest.approx(math.sqrt(101 * 301) - 1)
    # budget 0 sits at log(1) = 0: 35% is halfway between 50% at 0 and 20% at 100
    w0 = _worth([500, 200, 100, 50], 350, rng=np.random.default_rng(4))
    assert w0.images == pytest.approx(math.sqrt(101) - 1)
    # ... but 0 -> 100 is a step too wide to read a figure off: only the step is claimed
    assert w0.coarse and w0.step == (0, 100)
    assert w0.text() == "between 0 and 100 (a straight line between them says 9)"
    assert not w.coarse and w.step == (100, 300) and w.text().startswith("about 173 [")


def test_worth_beyond_the_largest_budget_is_more_than_n():
    w = _worth([500, 200, 100, 50], 20, rng=np.random.default_rng(5))
    assert w.status == "more_than" and w.images is None
    assert w.text() == "more than 1000"
    assert math.isinf(w.ci[1])


def test_worth_without_a_clear_gain_is_not_estimable():
    # 50.0% against 49.0% on 1000 images: the paired interval of the gain reaches zero
    w = _worth([500, 200, 100, 50], 490, rng=np.random.default_rng(0))
    assert w.status == "not_estimable" and "overlap" in w.reason
    assert w.gain_ci[0] <= 0 <= w.gain_ci[1]
    # the arm worse than the baseline at its budget: the curves cross
    w = _worth([500, 200, 100, 50], 90, index=3, rng=np.random.default_rng(1))
    assert w.status == "not_estimable" and "cross" in w.reason and w.text() == "not estimable"


def test_clusters_widen_the_interval():
    """Dev images in clusters of 10 near copies (whose outcomes agree) carry less information than
    1000 independent images: resampling clusters, not images, widens the interval."""
    n = 1000
    clusters = pl.DataFrame({"image_id": [f"d{i:05d}" for i in range(n)], "cluster": [str(i // 10) for i in range(n)]})
    alone = _worth([500, 200, 100, 50], 150, rng=np.random.default_rng(6))
    grouped = _worth([500, 200, 100, 50], 150, clusters=clusters, rng=np.random.default_rng(6), block=10)
    assert grouped.images == pytest.approx(alone.images)
    assert (grouped.ci[1] - grouped.ci[0]) > 2 * (alone.ci[1] - alone.ci[0])


def test_worth_interval_covers_the_true_answer_in_simulation():
    """True errors 50/20/10/5% at 0/100/300/1000 images and an arm at 10%: the answer is 300."""
    rng = np.random.default_rng(7)
    covered = 0
    sims = 60
    for s in range(sims):
        wrong = [rng.binomial(600, p) for p in (0.5, 0.2, 0.1, 0.05)]
        w = _worth(wrong, rng.binomial(600, 0.1), n=600, rng=rng, seed=s)
        if w.status != "not_estimable" and w.ci[0] <= 300 <= w.ci[1]:
            covered += 1
    assert covered / sims >= 0.85


def test_runs_on_different_dev_images_are_refused():
    a = _dev(10, 100)
    b = _dev(10, 99)
    with pytest.raises(DataError, match="different dev images"):
        curve.cluster_matrix({"a": a, "b": b}, pl.DataFrame(schema={"image_id": pl.String, "cluster": pl.String}))


def _null_curve(rng, n=400, errors=(0.5, 0.2, 0.1, 0.05), arms=("synth", "finetune"), seed=0):
    """Every arm truly equal to the baseline at every budget: any claimed gain is a false claim."""
    names = [str(x) for x in NS]
    ids = [f"d{i:05d}" for i in range(n)]
    runs = {f"{r}@{b}": pl.DataFrame({"image_id": ids, "correct": rng.random(n) >= e})
            for r in ("baseline", *arms) for b, e in zip(names, errors, strict=True)}
    m = curve.cluster_matrix(runs, pl.DataFrame(schema={"image_id": pl.String, "cluster": pl.String}))
    point, boot = m.error_rates(), curve.resample_errors(m, 1000, seed)
    col = {r: i for i, r in enumerate(m.runs)}

    def run(arm):
        cols = [col[f"{arm}@{b}"] for b in names]
        return point[cols], boot[:, cols]

    return curve.worth_all(names, NS, run("baseline"), {a: run(a) for a in arms})


def test_claims_over_every_arm_and_budget_stay_rare_when_no_arm_helps():
    """Eight comparisons at once (2 arms x 4 budgets): each alone would make a false claim 2.5% of
    the time, about 18% for any of the eight; Holm's correction keeps any false claim near 2.5%."""
    rng = np.random.default_rng(11)
    sims = 150
    false_claims = raw_claims = 0
    for s in range(sims):
        worths = _null_curve(rng, seed=s)
        assert len(worths) == 8
        false_claims += any(w.status != "not_estimable" for w in worths)
        raw_claims += any(w.p_value <= 0.025 and w.gain > 0 for w in worths)
    assert false_claims / sims <= 0.06
    assert raw_claims / sims >= 0.08  # the uncorrected rule would have claimed far more often


def test_a_real_gain_survives_the_correction_and_a_marginal_one_says_why_not():
    rng = np.random.default_rng(12)
    names = [str(x) for x in NS]
    worths = []
    for _ in range(20):
        n = 600
        ids = [f"d{i:05d}" for i in range(n)]
        errs = {"baseline": (0.5, 0.2, 0.1, 0.05), "synth": (0.1, 0.1, 0.08, 0.05)}
        runs = {f"{r}@{b}": pl.DataFrame({"image_id": ids, "correct": rng.random(n) >= e})
                for r, es in errs.items() for b, e in zip(names, es, strict=True)}
        m = curve.cluster_matrix(runs, pl.DataFrame(schema={"image_id": pl.String, "cluster": pl.String}))
        point, boot = m.error_rates(), curve.resample_errors(m, 1000, 0)
        cols = {r: [list(m.runs).index(f"{r}@{b}") for b in names] for r in errs}
        worths = curve.worth_all(names, NS, (point[cols["baseline"]], boot[:, cols["baseline"]]),
                                 {"synth": (point[cols["synth"]], boot[:, cols["synth"]])})
        # 50% -> 10% at budget 0 is clear however many comparisons are made
        assert worths[0].status == "estimate" and worths[0].p_adjusted <= 0.025
    # a gain that passes alone but not after the correction is not claimed, and says so
    w = _worth([500, 200, 100, 50], 450, rng=np.random.default_rng(0))
    assert w.status == "estimate" and w.p_value <= 0.025
    m = curve.worth("synth", "0", 0, NS, np.array([[0.5, 0.2, 0.1, 0.05], [0.45, np.nan, np.nan, np.nan]]),
                    np.stack([np.tile([0.5, 0.2, 0.1, 0.05], (100, 1)),
                              np.tile([0.45, 0.3, 0.3, 0.3], (100, 1))], axis=1), p_adjusted=0.04, tests=8)
    assert m.status == "not_estimable" and "8 comparisons" in m.reason


def test_a_figure_read_across_a_wide_step_says_so_in_the_sentence():
    from shiftkit.curve.stage import sentence

    ns = np.array([0, 854])
    point = np.array([[0.666, 0.011], [0.058, 0.016]])
    boot = np.repeat(point[None], 200, axis=0) + np.random.default_rng(0).normal(0, 0.01, (200, 2, 2))
    (w0, w1) = curve.worth_all(["0", "all"], ns, (point[0], boot[:, 0]), {"synth": (point[1], boot[:, 1])})
    assert w0.status == "estimate" and w0.coarse and w0.step == (0, 854)
    assert "between 0 and 854" in w0.text() and "wide" in w0.reason
    points = [{"arm": a, "budget": b, "images": n, "dev_error": float(point[i, j])}
              for i, a in enumerate(("baseline", "synth")) for j, (b, n) in enumerate((("0", 0), ("all", 854)))]
    text = sentence(points, [w0, w1])
    assert "would need between 0 and 854 labelled target images" in text
    assert "a straight line between those budgets says about 526" in text and "add budgets between them" in text


def test_a_gain_within_the_baselines_training_noise_is_not_claimed_and_one_beyond_it_is():
    """Known answers: the baseline trained twice at each of two budgets errs 38% / 42% and 18% / 22% on
    the same 1,000 dev images, a training noise of exactly sd 2.83 points (df 2). An arm 5 points
    better than the baseline's first draw, on nested errors (the paired resampling alone calls that
    certain), is within two trainings' luck: not claimed. 30 points better clears it; and the same
    5 points against draws that agree (no noise measured) is claimed."""
    from shiftkit.curve import stage

    n, names, ns = 1000, ["0", "500"], np.array([0.0, 500.0])
    noisy = {"0": [_dev(380, n), _dev(420, n)], "500": [_dev(180, n), _dev(220, n)]}
    sd, df = stage.training_noise(noisy)
    assert df == 2 and sd == pytest.approx(math.sqrt((4 * 0.02**2) / 2))
    assert stage.training_noise({"0": [_dev(380, n)], "500": [_dev(180, n)]}) == (0.0, 0)
    with pytest.raises(DataError, match="other dev images"):
        stage.training_noise({"0": [_dev(380, n), _dev(380, n + 1)]})

    def claimed(arm_wrong_at_0: int, sd: float, df: int) -> bool:
        runs = {"baseline@0": _dev(380, n), "baseline@500": _dev(180, n),
                "arm@0": _dev(arm_wrong_at_0, n), "arm@500": _dev(180, n)}
        m = curve.cluster_matrix(runs, pl.DataFrame(schema={"image_id": pl.String, "cluster": pl.String}))
        point, boot = m.error_rates(), curve.resample_errors(m, 4000, 0)
        stage.add_training_noise(boot, sd, df, 0)
        col = {r: i for i, r in enumerate(m.runs)}

        def run(a):
            cols = [col[f"{a}@{b}"] for b in names]
            return point[cols], boot[:, cols]

        w = curve.worth_all(names, ns, run("baseline"), {"arm": run("arm")}, 0.95)
        return w[0].status != "not_estimable"

    assert not claimed(330, sd, df)  # +5 points inside the noise
    assert claimed(80, sd, df)  # +30 points beyond it
    assert claimed(330, 0.0, 0)  # +5 points when the trainings agree
