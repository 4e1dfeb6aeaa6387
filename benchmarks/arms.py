"""The mitigation arms measured: what they cost, what they gain, and how often a gain is claimed
where there is none. Three modes, each on real MNIST digits (tests/adapt_helpers.py builds the pairs):

- ``probe``: the MNIST-M-style pair (digits blended with crops of scikit-learn's two photos), run as a
  user would, through the command line: ``shiftkit train --arm baseline --budget 0`` and
  ``shiftkit train --arm NAME --budget 0 --unlabelled FOLDER`` (a folder of target images without
  labels), then ``shiftkit evaluate``; prints each arm's dev error with its interval and its gain over
  the baseline with interval and Holm-adjusted p (the curve's statistics, shiftkit/curve/worth.py),
  the cut of the baseline's error and the training seconds (with the ratio to the baseline's).
- ``cost``: training seconds of each arm against the baseline's at the same budget (one process,
  interleaved repeats, best and median ratio).
- ``false-claims``: pairs without shift over several seeds, baseline vs each arm at budget 0 through
  the real curve chain; the share of seeds with any claimed gain.

    PYTHONPATH=. python benchmarks/arms.py probe --arms dann coral --web 2000 --unlabelled 3000
    PYTHONPATH=. python benchmarks/arms.py probe --arms dann --seed 0 --train-seed 1   # the same pair, retrained
    PYTHONPATH=. python benchmarks/arms.py cost --arms dann coral selftrain weighted
    PYTHONPATH=. python benchmarks/arms.py false-claims --seeds 5 --arms coral dann

Timings on a shared machine are noisy: compare ratios taken in one run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shiftkit.core import files as io  # noqa: E402
from shiftkit.core import schema  # noqa: E402
from tests.adapt_helpers import build_pair  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _cli(args: list, threads: int) -> float:
    t = time.perf_counter()
    env = {"PYTHONPATH": str(REPO), "SHIFTKIT_PROGRESS": "0", "OMP_NUM_THREADS": str(threads), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-m", "shiftkit", *map(str, args)], check=True, env=env)
    return time.perf_counter() - t


def _params(base: Path, a: argparse.Namespace) -> Path:
    p = base / "params.yaml"
    curve = "".join(f"  {kv.split('=', 1)[0]}: {kv.split('=', 1)[1]}\n" for kv in a.curve or [])
    p.write_text(f"train:\n  img_size: {a.img_size}\n  finetune_epochs: {a.epochs}\n  threads: {a.threads}\n"
                 f"  batch_size: {a.batch_size}\n  seed: {a.train_seed}\n" + (f"curve:\n{curve}" if curve else ""))
    return p


def compare(base: Path, m: Path, s: Path, arms: list[str], level: float = 0.95) -> list[dict]:
    """Each arm's dev error (interval) and its gain over the baseline with Holm-adjusted p."""
    from shiftkit.curve import worth
    from shiftkit.stats.bootstrap import cluster_ids
    from shiftkit.training.evaluate import read_predictions

    clusters = cluster_ids(io.read_table(m, schema.MANIFEST), None)
    dev = {}
    for a in ["baseline", *arms]:
        p = read_predictions(base / "pred" / a / "predictions.parquet")
        dev[a] = p.filter((p["split"] == "dev") & (p["source"] == "manifest"))
    mat = worth.cluster_matrix(dev, clusters)
    point, boot = mat.error_rates(), worth.resample_errors(mat, 1000, 0)
    col = {r: i for i, r in enumerate(mat.runs)}
    b = col["baseline"]
    p_raw = {a: worth.gain_p_value(boot[:, b] - boot[:, col[a]]) for a in arms}
    from shiftkit.stats.decompose import holm

    adj = holm(p_raw)
    out = [{"arm": "baseline", "dev_error": float(point[b]), "dev_ci": worth.interval(boot[:, b], level)}]
    for a in arms:
        j = col[a]
        gain = float(point[b] - point[j])
        out.append({"arm": a, "dev_error": float(point[j]), "dev_ci": worth.interval(boot[:, j], level),
                    "gain": gain, "gain_ci": worth.interval(boot[:, b] - boot[:, j], level), "p_holm": adj[a],
                    "cut": gain / float(point[b]), "claimed": gain > 0 and adj[a] <= (1 - level) / 2})
    return out


def probe(a: argparse.Namespace) -> None:
    base = Path(a.dir or tempfile.mkdtemp(prefix="arms-probe-"))
    if not (base / "splits" / "splits.parquet").exists():
        build_pair(base, shift=a.shift, n_web=a.web, n_target=a.target, n_dev=a.dev, n_test=100, n_bridge=50,
                   n_unlabelled=a.unlabelled, seed=a.seed)
    m, s, folder, params = base / "manifest/manifest.parquet", base / "splits/splits.parquet", base / "unlabelled", \
        _params(base, a)
    secs = {}
    for arm in ["baseline", *a.arms]:
        out = base / arm
        if a.reuse and arm in a.reuse and (out / "arm.json").is_file():
            continue  # trained by an earlier probe on this folder (same code: the caller's word)
        extra = ["--unlabelled", folder] if arm != "baseline" else []
        secs[arm] = _cli(["train", "--manifest", m, "--splits", s, "--params", params, "--arm", arm, "--budget", "0",
                          *extra, "--out", out, "--live", base / "live" / arm], a.threads)
        _cli(["evaluate", "--manifest", m, "--splits", out / "splits.parquet", "--model", out, "--out",
              base / "pred" / arm / "predictions.parquet", "--train-sample", "200", "--params", params], a.threads)
    for r in compare(base, m, s, a.arms):
        r["train_s"] = io.read_json(base / r["arm"] / "arm.json")["seconds"]
        r["cost_ratio"] = r["train_s"] / io.read_json(base / "baseline" / "arm.json")["seconds"]
        print(json.dumps(r, default=float))
    print(f"(command wall seconds: {json.dumps({k: round(v) for k, v in secs.items()})}; folder {base})")


def cost(a: argparse.Namespace) -> None:
    import torch

    from shiftkit.cli.train_arms import train_arm_run
    from shiftkit.curve.params import CurveParams
    from shiftkit.training.params import TrainParams

    torch.set_num_threads(a.threads)
    base = Path(tempfile.mkdtemp(prefix="arms-cost-"))
    m, s, folder = build_pair(base, shift="mnistm", n_web=a.web, n_target=a.target, n_dev=a.dev, n_unlabelled=0)
    tp = TrainParams(img_size=a.img_size, batch_size=a.batch_size, finetune_epochs=a.epochs, pretrained=False)
    times: dict[str, list[float]] = {k: [] for k in ["baseline", *a.arms]}
    for rep in range(a.repeats):
        for arm in times:
            train_arm_run(arm, "0", m, s, base / f"{arm}-{rep}", tp, CurveParams())
            times[arm].append(io.read_json(base / f"{arm}-{rep}" / "arm.json")["seconds"])
    for arm, ts in times.items():
        print(f"{arm:10s} best {min(ts):7.1f} s  median {np.median(ts):7.1f} s  ratio best "
              f"{min(ts) / min(times['baseline']):.2f}  median {np.median(ts) / np.median(times['baseline']):.2f}")


def false_claims(a: argparse.Namespace) -> None:
    import torch

    from shiftkit.curve import budgets, stage
    from shiftkit.curve.params import CurveParams
    from shiftkit.training.params import EvaluateParams, TrainParams

    torch.set_num_threads(a.threads)
    tp = TrainParams(img_size=16, batch_size=32, finetune_epochs=3, pretrained=False)
    cp = CurveParams(arms=("baseline", *a.arms), budgets=(0,), replicates=500, baseline_draws=a.draws)
    claims = 0
    for seed in range(a.seeds):
        base = Path(tempfile.mkdtemp(prefix=f"arms-none-{seed}-"))
        m, s, _ = build_pair(base, shift="none", n_web=300, n_target=450, n_dev=250, n_test=20, n_bridge=20,
                             seed=seed)
        budgets.write_budgets(m, s, base / "budgets", cp)
        for arm in cp.arms:
            stage.train_arm(arm, 0, m, budgets.budget_file(base / "budgets", 0), base / arm, tp, cp,
                            draws=cp.baseline_draws)
            stage.evaluate_arm(arm, m, base / arm, stage.point_path(base / "pred", arm, 0),
                               EvaluateParams(train_sample=50))
        data = stage.build_curve(base / "pred", base / "budgets", m, cp)
        claimed = [w["arm"] for w in data["worth"] if w["status"] != "not_estimable"]
        claims += bool(claimed)
        errs = {p["arm"]: round(p["dev_error"], 3) for p in data["points"]}
        print(f"seed {seed}: dev errors {errs}; training noise sd {data['training_sd'] * 100:.1f} points "
              f"(df {data['training_df']}); claimed: {claimed or 'none'}", flush=True)
    print(f"false-claim rate: {claims}/{a.seeds} seeds with any claimed gain (Holm level "
          f"{(1 - cp.level) / 2:.3f} one-sided per family)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["probe", "cost", "false-claims"])
    ap.add_argument("--arms", nargs="+", default=["dann", "coral", "selftrain", "weighted"])
    ap.add_argument("--web", type=int, default=2000)
    ap.add_argument("--target", type=int, default=500, help="target images: dev, test and labelled train")
    ap.add_argument("--dev", type=int, default=300)
    ap.add_argument("--unlabelled", type=int, default=3000)
    ap.add_argument("--shift", default="mnistm", choices=["mnistm", "texture", "tint", "none"])
    ap.add_argument("--img-size", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0, help="probe: the pair's draw")
    ap.add_argument("--train-seed", type=int, default=0, help="probe: train.seed of both arms (dann's training "
                    "noise is about 6 points of dev error on the MNIST-M-style pair: compare variants over several)")
    ap.add_argument("--draws", type=int, default=2, help="false-claims: trainings of the baseline "
                    "(curve.baseline_draws; 1: the training noise is not measured)")
    ap.add_argument("--dir", help="probe: a folder to keep (and reuse) the pair in")
    ap.add_argument("--curve", nargs="*", help="probe: curve parameters as KEY=VALUE (e.g. dann_warmup=0.34)")
    ap.add_argument("--reuse", nargs="*", help="probe: arms whose training in --dir is kept from an earlier probe")
    a = ap.parse_args()
    {"probe": probe, "cost": cost, "false-claims": false_claims}[a.mode](a)


if __name__ == "__main__":
    main()
