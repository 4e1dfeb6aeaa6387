"""Label-free error estimates (shiftkit/stats/labelfree.py), the live gate (check --model) and
predictions of unlabelled images (evaluate --images), on cases with known answers.

The truth case trains one small timm CNN (resnet10t, 16 px) once per module on 2,400 real MNIST digits,
two thirds of them blurred at random (the premise of the synth arm: the model has seen the kind of
degradation the target shows), calibrates on a dev set blurred at sigma 1, and estimates ten
unlabelled pools shifted further (more blur, or downscaling) whose real error is known and hidden.
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from shiftkit.core import files as io
from shiftkit.core import schema
from shiftkit.core.errors import DataError
from shiftkit.stats.labelfree import Sample, estimate, folds, label_free, labelled, sets_of
from tests.helpers import mnist, run_cli, write_folder

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MEAN, STD, SIZE = 0.13, 0.3, 16


# ---------------------------------------------------------------------------------------------
# the estimators on hand-made samples with known answers


def _sample(conf, wrong=None, cluster=None, negent=None):
    conf = np.asarray(conf, float)
    cluster = np.arange(conf.size) if cluster is None else np.asarray(cluster)
    return Sample(conf, None if negent is None else np.asarray(negent, float),
                  None if wrong is None else np.asarray(wrong, float), cluster)


def test_atc_doc_and_average_confidence_give_their_known_values():
    # calibration: 10 images, the 3 least confident wrong (error 0.3) -> ATC threshold between 0.5 and 0.6
    cal = _sample([0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99], [1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    tgt = _sample([0.2, 0.3, 0.4, 0.45, 0.52, 0.6, 0.7, 0.8])  # 5 of 8 below the threshold
    one_c, one_t = np.ones((1, cal.n)), np.ones((1, tgt.n))
    assert estimate("atc_mc", cal, tgt, one_c, one_t)[0] == pytest.approx(5 / 8)
    doc = 0.3 + cal.conf.mean() - tgt.conf.mean()
    assert estimate("doc", cal, tgt, one_c, one_t)[0] == pytest.approx(doc)
    assert estimate("avg_conf", None, tgt, None, one_t)[0] == pytest.approx(1 - tgt.conf.mean())
    with pytest.raises(DataError, match="entropy"):
        estimate("atc_ne", cal, tgt, one_c, one_t)


def test_crossfit_halves_never_split_a_cluster_and_clusters_widen_the_interval():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.3, 1.0, 200)
    wrong = (rng.random(200) > conf).astype(float)
    pairs = _sample(np.repeat(conf, 2), np.repeat(wrong, 2), np.repeat(np.arange(200), 2))
    half = folds(pairs, seed=3)
    assert np.all(half[::2] == half[1::2]) and 0.4 < half.mean() < 0.6
    alone = _sample(np.repeat(conf, 2), np.repeat(wrong, 2))  # the same images, no clusters known
    tgt = _sample(rng.uniform(0.2, 1.0, 300))
    wide = label_free({"dev": pairs, "unlabelled": tgt}, replicates=300).estimates["doc@dev"]["dev"]
    narrow = label_free({"dev": alone, "unlabelled": tgt}, replicates=300).estimates["doc@dev"]["dev"]
    assert wide.ci_high - wide.ci_low > 1.2 * (narrow.ci_high - narrow.ci_low)


def test_the_chosen_estimator_has_the_smallest_audited_error_and_test_is_never_read():
    rng = np.random.default_rng(1)
    conf = rng.uniform(0.3, 1.0, 400)
    rows = pl.DataFrame({
        "image_id": [f"i{i}" for i in range(400)], "split": ["dev"] * 200 + ["test"] * 200,
        "domain": "target", "label": "1", "pred": ["1" if c > 0.5 else "2" for c in conf],
        "confidence": conf,
    }).with_columns(correct=pl.col("label") == pl.col("pred"), entropy=1 - pl.col("confidence"))
    lf = label_free(sets_of(rows), replicates=200)
    assert set(next(iter(lf.estimates.values()))) == {"dev"}  # no bridge, no unlabelled, never test
    assert lf.audit(lf.chosen) == min(lf.audit(n) for n in lf.estimates)
    assert not any("@bridge" in n for n in lf.estimates)


# ---------------------------------------------------------------------------------------------
# real digits: one model, ten shifted pools with known error


def _blur(images: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return np.clip(gaussian_filter(images.astype(float), (0, sigma, sigma)), 0, 255) if sigma else images.astype(float)


def _down(images: np.ndarray, side: int) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    x = torch.tensor(images, dtype=torch.float32)[:, None]
    x = F.interpolate(F.interpolate(x, size=side, mode="bilinear", antialias=True), size=28, mode="bilinear")
    return x[:, 0].numpy()


def _prep(images: np.ndarray):
    import torch
    import torch.nn.functional as F

    x = torch.tensor(np.asarray(images, np.float32))[:, None] / 255.0
    return (F.interpolate(x, size=SIZE, mode="bilinear", antialias=True) - MEAN) / STD


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """resnet10t trained for two epochs on 2,400 MNIST digits, two thirds blurred (sigma 0 to 2.5),
    written as a shiftkit model folder."""
    import torch
    import torch.nn.functional as F

    from shiftkit.training import models
    from shiftkit.training.checkpoint import write_model

    torch.manual_seed(0)
    x, y = mnist(2400, 0)
    sigma = np.random.default_rng(1).uniform(0, 2.5, len(x))
    aug = np.stack([_blur(img[None], s)[0] if i % 3 else img.astype(float) for i, (img, s) in
                    enumerate(zip(x, sigma, strict=True))])
    xs, ys = _prep(aug), torch.tensor(y).long()
    net = models.create_model("resnet10t", 10, in_chans=1)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    net.train()
    for epoch in range(2):
        perm = torch.randperm(len(xs), generator=torch.Generator().manual_seed(epoch))
        for i in range(0, len(xs), 64):
            b = perm[i:i + 64]
            loss = F.cross_entropy(net(xs[b]), ys[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    folder = tmp_path_factory.mktemp("labelfree") / "model"
    meta = {"model": "resnet10t", "labels": [str(i) for i in range(10)], "img_size": SIZE, "channels": 1,
            "mean": [MEAN], "std": [STD]}
    write_model(folder, net, meta)
    return net, folder


def _frame(net, images, labels, split, tag):
    import torch

    with torch.no_grad():
        p = torch.softmax(net(_prep(images)), 1)
    conf, idx = p.max(1)
    ent = -(p * p.clamp_min(1e-12).log()).sum(1)
    lab = [str(int(v)) for v in labels]
    pred = [str(int(v)) for v in idx]
    return pl.DataFrame({
        "image_id": [f"{tag}{i}" for i in range(len(lab))], "split": split, "domain": "target", "label": lab,
        "pred": pred, "confidence": conf.double().numpy(), "correct": [a == b for a, b in zip(lab, pred, strict=True)],
        "entropy": ent.double().numpy(),
    })


def _small(images: np.ndarray) -> np.ndarray:
    import torch.nn.functional as F

    return F.adaptive_avg_pool2d(_prep(images), 8).flatten(1).numpy()


CASES = [("blur", s) for s in (1.0, 1.3, 1.6, 1.9, 2.2)] + [("downscale", k) for k in (14, 12, 10, 9, 8)]


def test_truth_the_chosen_estimate_tracks_the_real_error_of_shifted_pools(model, capsys):
    from shiftkit.stats.twosample import domain_scores, mmd_test

    net, _ = model
    bridge = _frame(net, *mnist(400, 2400), "bridge", "b")
    dev_x, dev_y = mnist(1000, 2800)
    dev = _frame(net, _blur(dev_x, 1.0), dev_y, "dev", "d")
    rows, misses, inside = [], [], []
    for j, (kind, s) in enumerate(CASES):
        x, y = mnist(500, 3800 + 500 * j)
        base = _blur(x, s) if kind == "blur" else _down(_blur(x, 1.0), s)
        pool = _frame(net, base, y, "unlabelled", f"u{j}-")
        truth = 1 - pool["correct"].mean()
        hidden = pool.with_columns(label=pl.lit(None, pl.String), correct=pl.lit(None, pl.Boolean))
        lf = label_free(sets_of(pl.concat([bridge, dev, hidden])), replicates=300)
        e = lf.estimates[lf.chosen]["unlabelled"]
        assert e.actual is None  # the pool's labels were never seen
        misses.append(abs(e.estimate - truth))
        inside.append(e.ci_low <= truth <= e.ci_high)
        feats = (_small(_blur(dev_x[:120], 1.0)), _small(base[:120]))  # 8x8 pixels: cheap, and enough to see
        auc = domain_scores(*feats, folds=3, seed=0)["auc"]
        mmd = mmd_test(*feats, permutations=20, seed=0)["mmd2"]
        rows.append(f"{kind} {s}: real {truth:.3f}, {lf.chosen} {e.estimate:.3f} [{e.ci_low:.3f}, {e.ci_high:.3f}]"
                    f", domain AUC {auc:.2f}, MMD^2 {mmd:.4f}")
    with capsys.disabled():
        print("\nlabel-free truth case (dev: blur 1.0):\n" + "\n".join(rows)
              + f"\nmean |error| {np.mean(misses):.4f}, coverage {np.mean(inside):.2f}")
    assert np.mean(misses) <= 0.03, rows
    assert np.mean(inside) >= 0.9, rows


# ---------------------------------------------------------------------------------------------
# evaluate --images, the report's section, metrics.json


@pytest.fixture(scope="module")
def predictions(model, tmp_path_factory):
    """A predictions table of the model (bridge sharp, dev blurred at sigma 1) through the loader."""
    from shiftkit.params import load_params
    from shiftkit.training.unlabelled import predict_files

    _, folder = model
    base = tmp_path_factory.mktemp("lfpred")
    ep = load_params(None).replace("evaluate", workers=0).evaluate
    parts = []
    for split, (x, y), sigma in (("bridge", mnist(200, 9000), 0.0), ("dev", mnist(300, 9200), 1.0)):
        paths = write_folder(base / split, _blur(x, sigma).astype(np.uint8), y, prefix=split)
        table, _ = predict_files(paths, folder, ep, split=split)
        lab = pl.Series([p.parent.name for p in paths])
        rel = pl.Series([p.relative_to(base).as_posix() for p in paths])
        parts.append(table.with_columns(split=pl.lit(split), label=lab, correct=pl.col("pred") == lab, path=rel)
                     .drop("abspath"))
    out = io.write_table(pl.concat(parts), base / "predictions.parquet", schema.PREDICTIONS)
    return out, base, ep


def test_evaluate_images_adds_an_unlabelled_split_and_the_report_estimates_it(model, predictions, tmp_path):
    _, folder = model
    pred, base, _ = predictions
    x, y = mnist(200, 9600)
    photos = tmp_path / "photos"
    write_folder(photos, _blur(x, 1.6).astype(np.uint8), y, prefix="p")
    out = tmp_path / "with_pool.parquet"
    r = run_cli(["evaluate", "--model", folder, "--images", photos, "--add-to", pred, "--out", out])
    assert r.code == 0, r.stderr
    df = io.read_table(out, schema.PREDICTIONS)
    pool = df.filter(pl.col("split") == "unlabelled")
    assert pool.height == 200 and pool["label"].null_count() == 200 and pool["correct"].null_count() == 200
    assert labelled(df).height == df.height - 200
    assert all(p.is_file() for p in io.image_paths(df, out))  # old and new paths relative to the new table
    r = run_cli(["report", out, "--out", tmp_path / "rep", "--quiet"])
    assert r.code == 0, r.stderr
    m = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    lf = m["label_free"]
    assert set(lf) == {"chosen", "estimators"}
    per = lf["estimators"][lf["chosen"]]
    assert set(per) == {"bridge", "dev", "unlabelled"} and per["unlabelled"]["actual"] is None
    dev_error = 1 - labelled(df).filter(pl.col("split") == "dev")["correct"].mean()
    assert per["dev"]["actual"] == pytest.approx(dev_error, abs=1e-6)  # metrics.json rounds to 6 digits
    assert m["counts"]["dev"] == 300  # the decomposition never counts the pool
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Target images without labels" in md and "estimated data mismatch against the bridge" in md
    assert "◀ chosen" in md and "dev: actual" in md


# ---------------------------------------------------------------------------------------------
# the live gate


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    from shiftkit.ingest.stage import ingest

    base = tmp_path_factory.mktemp("lfref")
    write_folder(base / "web", *mnist(40, 10000), prefix="w")
    ingest({"web": base / "web"}, base / "manifest", workers=1)
    return base / "manifest" / "manifest.parquet"


def test_check_model_passes_sharp_drops_and_blocks_degraded_ones(model, predictions, reference, tmp_path):
    _, folder = model
    pred, _, _ = predictions
    params = tmp_path / "params.yaml"
    params.write_text("report:\n  replicates: 300\nevaluate:\n  workers: 0\n")
    x, y = mnist(150, 10100)
    write_folder(tmp_path / "sharp" / "target", x, y, prefix="s")
    x, y = mnist(150, 10300)
    write_folder(tmp_path / "bad" / "target", _down(_blur(x, 2.5), 6).astype(np.uint8), y, prefix="b")
    common = ["--reference", reference, "--model", folder, "--predictions", pred, "--params", params]
    ok = run_cli(["check", tmp_path / "sharp", *common, "--out", tmp_path / "ok"])
    assert ok.code == 0, ok.stdout + ok.stderr
    line = [x for x in (ok.stdout + ok.stderr).splitlines() if "[error_rise]" in x]
    assert len(line) == 1 and "within check.max_error_rise 5 points" in line[0] and "estimated error" in line[0]
    bad = run_cli(["check", tmp_path / "bad", *common, "--out", tmp_path / "bad_out"])
    assert bad.code == 1, bad.stdout + bad.stderr
    line = [x for x in (bad.stdout + bad.stderr).splitlines() if "[error_rise]" in x]
    assert len(line) == 1 and "above check.max_error_rise 5 points" in line[0]
    md = (tmp_path / "bad_out" / "check.md").read_text()
    assert "Estimated error per drop" in md and "| drop |" in md
    found = json.loads((tmp_path / "bad_out" / "check.json").read_text())["findings"]
    live = next(f for f in found if f["rule"] == "error_rise")
    d = live["data"]["drops"][-1]
    assert live["severity"] == "error" and d["ci_low"] <= d["estimate"] <= d["ci_high"]
    assert d["estimate"] - live["data"]["dev_error"] > 0.05


def test_check_model_bad_inputs_get_one_line_and_exit_2(model, predictions, reference, tmp_path):
    from shiftkit.training import models
    from shiftkit.training.checkpoint import write_model

    net, folder = model
    pred, _, _ = predictions
    x, y = mnist(20, 10500)
    write_folder(tmp_path / "drop" / "target", x, y, prefix="d")
    (tmp_path / "empty" / "target").mkdir(parents=True)
    df = io.read_table(pred, schema.PREDICTIONS)
    no_conf = io.write_table(df.with_columns(confidence=pl.lit(None, pl.Float64)), tmp_path / "nc.parquet",
                             schema.PREDICTIONS)
    other = tmp_path / "other_model"
    write_model(other, net, {**models.read_meta(folder / models.META_NAME), "labels": list("abcdefghij")})
    cases = {
        "no confidences": ("drop", folder, no_conf, "confidence"),
        "a model for other labels": ("drop", other, pred, "a model for other labels"),
        "an empty drop": ("empty", folder, pred, "holds no image"),
    }
    for name, (drop, mdir, p, words) in cases.items():
        r = run_cli(["check", tmp_path / drop, "--reference", reference, "--model", mdir, "--predictions", p,
                     "--out", tmp_path / "out"])
        assert r.code == 2, (name, r.stderr)
        assert len(r.lines) == 1 and words in r.lines[0], (name, r.lines)
    r = run_cli(["check", tmp_path / "drop", "--reference", reference, "--model", folder])
    assert r.code == 2 and "--predictions" in r.lines[0]


def test_check_model_latest_estimates_the_window_of_drops_and_gates_the_newest(model, predictions, tmp_path):
    """`check --latest --model`: the window of the last check.window drops of the manifest, one estimate
    each, in drop order; the newest is gated. Known answers: drop 1 sharp, drop 2 blurred like dev,
    drop 3 strongly degraded (blocks: its estimate is above dev + 5 points, the others within)."""
    from shiftkit.ingest.stage import ingest

    _, folder = model
    pred, _, _ = predictions
    drops = tmp_path / "incoming"
    for j, (prefix, degrade) in enumerate((("s", lambda x: x), ("m", lambda x: _blur(x, 1.0)),
                                           ("b", lambda x: _down(_blur(x, 2.5), 6)))):
        x, y = mnist(120, 10600 + 120 * j)
        write_folder(drops / "target", degrade(x).astype(np.uint8), y, prefix=prefix)
        ingest({"target": drops / "target"}, tmp_path / "manifest", workers=1)  # drop j + 1: the new files
    manifest = tmp_path / "manifest" / "manifest.parquet"
    assert pl.read_parquet(manifest)["drop"].unique().sort().to_list() == [1, 2, 3]
    runs = {}
    for window in (8, 2):
        params = tmp_path / f"w{window}.yaml"
        params.write_text(f"report:\n  replicates: 300\nevaluate:\n  workers: 0\ncheck:\n  window: {window}\n")
        out = tmp_path / f"out{window}"
        r = run_cli(["check", "--latest", "--reference", manifest, "--model", folder, "--predictions", pred,
                     "--params", params, "--out", out])
        assert r.code == 1, r.stdout + r.stderr  # the newest drop is the degraded one: blocked
        line = [x for x in (r.stdout + r.stderr).splitlines() if "[error_rise]" in x]
        assert len(line) == 1 and "of drop 3" in line[0] and "above check.max_error_rise 5 points" in line[0]
        live = next(f for f in json.loads((out / "check.json").read_text())["findings"] if f["rule"] == "error_rise")
        runs[window] = live["data"]
        md = (out / "check.md").read_text()
        shown = [d["drop"] for d in live["data"]["drops"]]
        assert all(f"| {d} | 120 |" in md for d in shown)
        assert (out / "live.png").is_file() and "![estimated error per drop](live.png)" in md
    full = runs[8]
    assert [d["drop"] for d in full["drops"]] == ["drop 1", "drop 2", "drop 3"]
    assert [d["drop"] for d in runs[2]["drops"]] == ["drop 2", "drop 3"]  # only the last check.window drops
    rise = [d["estimate"] - full["dev_error"] for d in full["drops"]]
    assert rise[0] <= 0.05 and rise[1] <= 0.05 < rise[2], rise  # the slide shows, and only the last blocks
    assert full["drops"][0]["estimate"] < full["drops"][2]["estimate"]
    # the same drop gets the same estimate whatever the window (same model, calibration, seed)
    assert runs[2]["drops"][-1]["estimate"] == pytest.approx(full["drops"][-1]["estimate"])
