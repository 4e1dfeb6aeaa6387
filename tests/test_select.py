"""Selection (issue 24): the strategies on cases with known answers, the pool rules, the command,
and the curve's simulation on real digits (a known informative subset is found and priced; a pool
of equally informative images earns no claim)."""

from __future__ import annotations

import shutil

import numpy as np
import polars as pl
import pytest

from shiftkit.core import files as io
from shiftkit.core import schema
from shiftkit.core.errors import ConfigError, DataError, RegistryError
from shiftkit.curve.params import CurveParams
from shiftkit.select import pool as pools
from shiftkit.select import strategies as st
from shiftkit.select.strategies import PoolView, choose
from tests import helpers
from tests.train_helpers import build_example

LABELS = ("a", "b", "c")
PARAMS = helpers.REPO / "params.yaml"


def _probs(rows: list[list[float]]) -> np.ndarray:
    return np.array(rows, dtype=np.float64)


def test_margin_and_entropy_choose_the_known_most_uncertain_rows():
    p = _probs([[0.98, 0.01, 0.01], [0.5, 0.49, 0.01], [0.34, 0.33, 0.33], [0.7, 0.2, 0.1], [0.55, 0.45, 0.0]])
    feats = np.zeros((5, 2))
    m = choose("margin", PoolView(p, feats, LABELS), 2)
    assert m.index.tolist() == [1, 2]  # margins 0.01 and 0.01, ties in row order; then 4 (0.10)
    assert "a 0.50 vs b 0.49" in m.why[0]
    e = choose("entropy", PoolView(p, feats, LABELS), 2)
    assert e.index.tolist() == [2, 3]  # entropy 1.10, 0.80 nats; row 1 (0.5, 0.49, 0.01) has 0.74
    assert e.score[0] == pytest.approx(1.0, abs=1e-3) and e.score[0] > e.score[1]


def _blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three far-apart blobs of 20 points in 8-d (directions e0, e1, e2); blob index per point."""
    rng = np.random.default_rng(seed)
    centre = np.eye(8)[:3] * 10.0
    blob = np.repeat(np.arange(3), 20)
    return centre[blob] + rng.normal(scale=0.3, size=(60, 8)), blob


def test_coreset_covers_every_blob_and_skips_the_labelled_one():
    f, blob = _blobs()
    p = np.full((60, 3), 1 / 3)
    picked = choose("coreset", PoolView(p, f, LABELS, seed=4), 3)
    assert sorted(blob[picked.index].tolist()) == [0, 1, 2]
    # blob 0 already labelled: two picks go to the two others
    picked = choose("coreset", PoolView(p, f, LABELS, labelled=f[blob == 0][:3]), 2)
    assert sorted(blob[picked.index].tolist()) == [1, 2]


def test_clue_goes_where_the_uncertainty_is():
    f, blob = _blobs()
    p = np.tile([[0.98, 0.01, 0.01]], (60, 1))
    p[blob == 2] = [0.34, 0.33, 0.33]  # the model is unsure about blob 2 only
    picked = choose("clue", PoolView(p, f, LABELS, seed=0), 1)
    assert blob[picked.index].tolist() == [2]
    picked = choose("clue", PoolView(p, f, LABELS, seed=0), 3)
    assert sorted(blob[picked.index].tolist()) == [0, 1, 2]  # k = 3 clusters: one image each


def test_random_is_seeded_and_every_strategy_returns_distinct_rows():
    f, _ = _blobs()
    p = np.random.default_rng(1).dirichlet(np.ones(3), size=60)
    a, b = (choose("random", PoolView(p, f, LABELS, seed=s), 10).index.tolist() for s in (3, 3))
    assert a == b != choose("random", PoolView(p, f, LABELS, seed=4), 10).index.tolist()
    for name in st.strategy_names():
        picked = choose(name, PoolView(p, f, LABELS, seed=2), 12)
        assert len(set(picked.index.tolist())) == 12 and len(picked.why) == 12, name
    assert choose("margin", PoolView(p, f, LABELS), 500).index.size == 60  # never more than the pool


def test_a_new_strategy_is_one_decorated_function():
    @st.strategy("first_rows")
    def first_rows(view: PoolView, budget: int) -> st.Picked:
        return st.Picked(np.arange(budget), np.ones(budget), ["first"] * budget)

    try:
        assert CurveParams(selection=("random", "first_rows")).selection == ("random", "first_rows")
        with pytest.raises(RegistryError, match="registered twice"):
            st.strategy("first_rows")(first_rows)
    finally:
        st.STRATEGIES.pop("first_rows")
    with pytest.raises(ConfigError, match="curve.selection"):
        CurveParams(selection=("random", "first_rows"))
    with pytest.raises(ConfigError, match="including random"):
        CurveParams(selection=("margin",))


def test_the_pool_is_never_dev_test_or_bridge(tmp_path):
    m, s = build_example(tmp_path, n_web=30, n_target=40, n_dev=10, n_test=6, n_bridge=6)
    man = io.read_table(m, schema.MANIFEST)
    spl = io.read_table(s, schema.SPLITS_TABLE)
    dom = spl.join(man.select("image_id", "domain"), on="image_id")
    plain = pools.from_tables(m, s, "target")
    want = dom.filter((pl.col("split") == "train") & (pl.col("domain") == "target"))["image_id"].sort()
    assert plain["image_id"].to_list() == want.to_list()  # plain splits: every target train image
    # a budget table: only the unused target train images (and any unlabelled image)
    ids = want.to_list()
    budget = spl.with_columns(pl.when(pl.col("image_id").is_in(ids[:5])).then(pl.lit("unused"))
                              .otherwise(pl.col("split")).alias("split"))
    path = io.write_table(budget, tmp_path / "b.parquet", schema.SPLITS_TABLE)
    assert pools.from_tables(m, path, "target")["image_id"].to_list() == sorted(ids[:5])
    only_eval = spl.filter(pl.col("split").is_in(["dev", "test", "bridge"]))
    path = io.write_table(only_eval, tmp_path / "e.parquet", schema.SPLITS_TABLE)
    with pytest.raises(DataError, match="never dev, test or bridge"):
        pools.from_tables(m, path, "target")


@pytest.mark.usefixtures("one_torch_thread")
def test_select_command_writes_the_listing_and_the_sheet(tmp_path):
    from PIL import Image

    from shiftkit.training.params import TrainParams
    from shiftkit.training.train import train

    m, s = build_example(tmp_path, n_web=40, n_target=40, n_dev=10, n_test=6, n_bridge=6)
    train(m, s, tmp_path / "model", TrainParams(img_size=16, batch_size=16, finetune_epochs=1, head_epochs=0,
                                                 pretrained=False, workers=1), live_dir=None)
    out = tmp_path / "sel"
    r = helpers.run_cli(["select", "--manifest", m, "--splits", s, "--model", tmp_path / "model", "--budget", 7,
                         "--strategy", "clue", "--out", out, "--params", PARAMS])
    assert r.code == 0, r.stderr
    table = pl.read_csv(out / "selection.csv")
    assert table.columns == ["image_id", "path", "score", "strategy", "why"] and table.height == 7
    assert set(table["strategy"]) == {"clue"} and table["image_id"].n_unique() == 7
    pool_ids = set(pools.from_tables(m, s, "target")["image_id"])
    assert set(table["image_id"]) <= pool_ids
    assert Image.open(out / "selection.png").size[0] > 0
    # any folder of images
    r = helpers.run_cli(["select", "--images", tmp_path / "raw" / "target", "--model", tmp_path / "model",
                         "--budget", 3, "--strategy", "coreset", "--out", tmp_path / "sel2",
                         "--params", PARAMS])
    assert r.code == 0, r.stderr
    assert pl.read_csv(tmp_path / "sel2" / "selection.csv").height == 3
    bad = helpers.run_cli(["select", "--manifest", m, "--splits", s, "--model", tmp_path / "model", "--budget", 3,
                           "--strategy", "oracle", "--out", out, "--params", PARAMS])
    helpers.assert_bad_input(bad, "oracle")
    assert pl.read_csv(out / "selection.csv").height == 7  # nothing earlier damaged
    bad = helpers.run_cli(["select", "--images", tmp_path / "nowhere", "--model", tmp_path / "model",
                           "--budget", 3, "--out", out, "--params", PARAMS])
    helpers.assert_bad_input(bad, "nowhere")


# --- the curve's simulation on real digits: a known informative subset, and a pool without one ---


@pytest.mark.slow  # 12 trainings (web-only, random 3 draws x 2 rounds, margin 2, the null round 4): issue 24
@pytest.mark.usefixtures("one_torch_thread")
def test_an_informative_subset_earns_a_claimed_saving_and_copies_earn_none(tmp_path):
    """web lacks the target's classes 5 and 8 (two images each): the web-only model hesitates on them,
    so images of those classes are the informative ones; margin finds them (random draws them at their
    20% share) and the saving passes Holm. A pool of near copies of one image is equally informative
    everywhere: no saving is claimed on this seed (the false-claim rate over seeds is
    benchmarks/selection_truth.py's: random's draws put the training noise into every claim)."""
    from tests.select_helpers import simulate

    found = simulate(tmp_path / "informative", ("random", "margin"))
    claimed = [r for r in found["savings"] if r["claimed"]]
    assert claimed, found["savings"]
    assert all(r["strategy"] == "margin" and r["gain"] > 0 for r in claimed)
    assert "margin with" in found["sentence"]
    # the points are the same dev images for both strategies, starting from the same web-only model
    web = {p["strategy"]: p["dev_error"] for p in found["points"] if p["labels"] == 0}
    assert web["random"] == web["margin"]

    web = tmp_path / "informative" / "web"  # the same web images: the same web-only model
    null = simulate(tmp_path / "copies", ("random", "margin"), copies=True, rounds=1, web=web)
    assert not any(r["claimed"] for r in null["savings"]), null["savings"]
    assert null["sentence"].startswith("No selection strategy is shown to beat random")


def _dev(errors: int, n: int = 400) -> pl.DataFrame:
    return pl.DataFrame({"image_id": [f"{i:04d}" for i in range(n)], "correct": [i >= errors for i in range(n)]})


def test_savings_read_off_randoms_curve_and_reach_the_report():
    """Known curves: random 50% -> 40% -> 30% dev error at 0, 30, 60 labels; margin reaches 30% with 30
    labels, so it saves about 30 labels there (random reaches 30% at 60), claimed under Holm."""
    from shiftkit.curve.selection import savings
    from shiftkit.report.markdown import render_sections
    from shiftkit.report.selection import figure, section

    dev = {("random", 0): _dev(200), ("random", 30): _dev(160), ("random", 60): _dev(120),
           ("margin", 0): _dev(200), ("margin", 30): _dev(120), ("margin", 60): _dev(100)}
    clusters = pl.DataFrame({"image_id": [f"{i:04d}" for i in range(400)], "cluster": [f"{i:04d}" for i in range(400)]})
    data = savings(dev, clusters, CurveParams(selection=("random", "margin"), replicates=200))
    at30 = next(r for r in data["savings"] if r["labels"] == 30)
    assert at30["claimed"] and at30["random_labels"] == pytest.approx(60.0) and at30["saved"] == pytest.approx(30.0)
    assert data["sentence"].startswith("margin with 30 labels reaches the dev error random needs about 60")
    md = render_sections([section(data)])
    assert "| margin | 30 |" in md and "about 30 labels saved" in md and "selection_curve.png" in md
    assert figure(data)[:8] == b"\x89PNG\r\n\x1a\n"
    # equal curves: nothing claimed
    same = {k: dev[("random", k[1])] for k in dev}
    flat = savings(same, clusters, CurveParams(selection=("random", "margin"), replicates=200))
    assert not any(r["claimed"] for r in flat["savings"])


def _dev_wrong(wrong: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame({"image_id": [f"{i:04d}" for i in range(len(wrong))], "correct": ~wrong})


def test_a_gain_within_randoms_training_noise_is_not_claimed_and_one_beyond_it_is():
    """Known case, 400 dev images. Random's three draws at 30 labels err on 35%, 40% and 45% of them
    (mean 40%: one fine-tuning moves the error by 5 points); margin errs on 35%. On the dev images
    alone that 5-point gain is clear (paired, margin's errors a subset of random's); within random's
    own spread it is a lucky fine-tuning: not claimed. The same gain against three draws that agree
    (all 40%) is claimed, and a 20-point gain clears the noisy draws. A second round, 10 points lower
for every run, doubles the noise's degrees of freedom."""
    from shiftkit.curve.selection import savings, training_noise

    rng = np.random.default_rng(5)
    order = rng.permutation(400)

    def wrong(k: int) -> np.ndarray:  # the first k of one fixed order: nested error sets
        w = np.zeros(400, dtype=bool)
        w[order[:k]] = True
        return w

    clusters = pl.DataFrame({"image_id": [f"{i:04d}" for i in range(400)], "cluster": [f"{i:04d}" for i in range(400)]})
    cp = CurveParams(selection=("random", "margin"), replicates=400)
    web = _dev_wrong(wrong(200))

    def case(draws: list[int], margin: int) -> dict:  # two rounds, the second 40 errors lower than the first
        dev = {("random", 0): [web] * len(draws), ("margin", 0): [web]}
        for n, less in ((30, 0), (60, 40)):
            dev[("random", n)] = [_dev_wrong(wrong(k - less)) for k in draws]
            dev[("margin", n)] = [_dev_wrong(wrong(margin - less))]
        return savings(dev, clusters, cp)

    noisy = case([140, 160, 180], 140)
    assert noisy["training_sd"] == pytest.approx(0.05) and noisy["training_df"] == 4
    assert noisy["random_draws"] == 3
    assert next(p for p in noisy["points"] if p["strategy"] == "random" and p["labels"] == 30)["dev_error"] == \
        pytest.approx(0.40)
    assert not any(r["claimed"] for r in noisy["savings"]), noisy["savings"]
    assert noisy["sentence"].startswith("No selection strategy")
    steady = case([160, 160, 160], 140)
    assert steady["training_sd"] == pytest.approx(0.0, abs=1e-12) and any(r["claimed"] for r in steady["savings"])
    assert any(r["claimed"] for r in case([140, 160, 180], 80)["savings"])
    assert training_noise({("random", 30): [web]}) == (0.0, 0)


# --- DVC: one cached entry per (strategy, round), each after the previous round ---


def _round_of(path: str) -> tuple[str, int] | None:
    """(strategy, round) of a data/curve/selection/<strategy>/round-<r> path."""
    parts = path.split("/")
    if len(parts) == 5 and parts[:3] == ["data", "curve", "selection"] and parts[4].startswith("round-"):
        return parts[3], int(parts[4].removeprefix("round-"))
    return None


def test_every_round_is_its_own_dvc_entry_after_the_previous_and_new_ones_leave_the_rest_cached(tmp_path):
    from shiftkit.params import load_params
    from tests.helpers import dvc_stages
    from tests.select_helpers import stage_key

    small = ["curve.selection=[random,margin]", "curve.rounds=[{round:1,after:0},{round:2,after:1}]"]
    more = ["curve.selection=[random,margin,clue]",
            "curve.rounds=[{round:1,after:0},{round:2,after:1},{round:3,after:2}]"]
    for sub in ("a", "b", "default", "c"):
        (tmp_path / sub).mkdir()
    pa, a = dvc_stages(tmp_path / "a", small)
    pb, b = dvc_stages(tmp_path / "b", more)
    outs = {}  # (strategy, round) -> the entry writing it
    for name, stage in b.items():
        for o in stage.outs:
            if (sr := _round_of(o.def_path)) is not None:
                outs[sr] = name
    want = {(s, r) for s in ("random", "margin", "clue") for r in range(4)}
    assert set(outs) == want
    for (s, r), name in outs.items():
        rounds = [x for d in b[name].deps if (x := _round_of(d.def_path))]
        if r == 0:  # round 0: the web-only model's point, no training
            assert name == f"curve_select_start@{s}" and rounds == []
            continue
        assert rounds == [(s, r - 1)], name  # only the previous round of the same strategy
        params = {k for d in b[name].deps for k in (getattr(d, "params", None) or [])}
        assert "curve.round_size" in params and not params & {"curve.rounds", "curve.selection"}
    summary = {d.def_path for d in b["curve"].deps}
    assert "data/curve/selection" in summary
    # adding a strategy and a round: every entry of the smaller run is unchanged, so DVC keeps it cached
    shared = {n for n in a if n.startswith("curve_select")}
    assert shared and shared < set(b)
    assert all(stage_key(a[n], pa) == stage_key(b[n], pb) for n in shared)
    # the default (curve.selection empty) runs no selection entry but the web point's
    _, default = dvc_stages(tmp_path / "default", [])
    assert {n for n in default if n.startswith("curve_select")} == {"curve_select_web"}
    # a chain DVC could run out of order is refused by shiftkit's params check
    from dvc.utils.hydra import apply_overrides

    shutil.copy(helpers.REPO / "params.yaml", tmp_path / "c" / "params.yaml")
    apply_overrides(str(tmp_path / "c" / "params.yaml"), ["curve.rounds=[{round:1,after:0},{round:3,after:1}]"])
    with pytest.raises(ConfigError, match="curve.rounds"):
        load_params(tmp_path / "c" / "params.yaml")


def test_a_round_starts_only_from_the_round_before(tmp_path):
    from shiftkit.core.errors import InputPathError
    from shiftkit.curve import selection
    from shiftkit.training.params import TrainParams

    web = tmp_path / "web"
    web.mkdir()
    pl.DataFrame({"image_id": ["a", "b"], "correct": [True, False]}).write_parquet(web / selection.DEV)
    selection.start(web, tmp_path / "margin" / "round-0")
    assert pl.read_parquet(tmp_path / "margin" / "round-0" / selection.CHOSEN).height == 0
    cp = CurveParams(selection=("random", "margin"))
    with pytest.raises(DataError, match="round 0's choices; round 2 starts from round 1"):
        selection.run_round("margin", 2, "m", "s", web, tmp_path / "out", TrainParams(), cp,
                            previous=tmp_path / "margin" / "round-0")
    with pytest.raises(InputPathError, match="round-1"):
        selection.run_round("margin", 2, "m", "s", web, tmp_path / "out", TrainParams(), cp,
                            previous=tmp_path / "margin" / "round-1")
    assert not (tmp_path / "out").exists()


def test_the_embedding_equals_a_plain_forward_pass(tmp_path):
    """embed runs the model channels-last for speed; the probabilities and features must be those of
    the model's own forward pass on the same decoded images."""
    import torch

    from shiftkit.select.embed import embed_model
    from shiftkit.training import loader as data
    from shiftkit.training.models import create_model

    x, y = helpers.mnist(12)
    paths = [str(p) for p in helpers.write_folder(tmp_path / "imgs", x, y, prefix="d")]
    torch.manual_seed(0)
    model = create_model("resnet10t", 3, in_chans=3, pretrained=False).eval()
    meta = {"img_size": 16, "channels": 3, "mean": [0.5] * 3, "std": [0.25] * 3, "labels": list(LABELS)}
    ds = data.ImageDataset(paths, np.zeros(len(paths), dtype=np.int64), size=16, channels=3)
    raw = torch.stack([ds[i][0] for i in range(len(ds))]).float()
    with torch.inference_mode():
        pooled = model.forward_head(model.forward_features((raw - 127.5) / 63.75), pre_logits=True)
        want = torch.softmax(model.get_classifier()(pooled), dim=1).numpy()
    e = embed_model(model, meta, paths, batch_size=5)
    assert e.probs.shape == (12, 3) and e.feats.shape == (12, pooled.shape[1])
    np.testing.assert_allclose(e.probs, want, atol=1e-4)
    np.testing.assert_allclose(e.feats, pooled.numpy(), rtol=1e-3, atol=1e-4)
