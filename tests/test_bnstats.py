"""Two sets of batch-norm statistics (shiftkit/training/bnstats.py): an arm that adapts keeps the
source's apart from the target's, saves both, resumes both, and evaluation normalises each row with
its own domain's; a model folder without the second set evaluates as before (one whose model.json
names a missing or damaged set: tests/test_hostile.py)."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import polars as pl
import pytest
import torch
from safetensors.torch import load_file

from shiftkit.core import files as io
from shiftkit.core import schema
from shiftkit.core.errors import ConfigError
from shiftkit.curve import budgets, stage
from shiftkit.curve.params import CurveParams
from shiftkit.training import bnstats, evaluate, models
from shiftkit.training.params import EvaluateParams, TrainParams
from shiftkit.training.train import train
from tests.adapt_helpers import build_pair

TINY = TrainParams(img_size=16, batch_size=32, finetune_epochs=2, pretrained=False)
EVAL = EvaluateParams(batch_size=256, train_sample=50)


def _inputs(tmp):
    """A texture pair at budget 8: web train and bridge rows, 8 labelled target train rows, a pool."""
    m, s, _ = build_pair(tmp, shift="texture", n_web=60, n_target=50, n_dev=16, n_test=8, n_bridge=10)
    man, spl = io.read_table(m, schema.MANIFEST), io.read_table(s, schema.SPLITS_TABLE)
    order = budgets.draw_order(budgets.target_train(spl, man, "target"), 0)
    b8 = io.write_table(budgets.budget_splits(spl, order, 8), tmp / "b8.parquet", schema.SPLITS_TABLE)
    spec = stage.adapt_spec("coral", man, m, io.read_table(b8, schema.SPLITS_TABLE), CurveParams())
    return m, b8, spec


def _batch_stats(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    x = x.detach().double().transpose(0, 1).flatten(1)
    return x.mean(1).numpy(), x.var(1, unbiased=True).numpy()  # running_var takes the unbiased variance


@pytest.fixture(scope="module")
def coral(tmp_path_factory):
    """A tiny coral arm trained once, every train-mode batch-norm call recorded: which set of running
    statistics the layer held (the source's or the model's own) and the batch's mean and variance."""
    tmp = tmp_path_factory.mktemp("bnstats")
    m, b8, spec = _inputs(tmp)
    seen, calls, original = {}, [], bnstats.copy_of

    def spy(model):  # the model and its second set, to tell the two sets apart in the hook
        seen["model"], seen["source"] = model, original(model)
        return seen["source"]

    def hook(module, args):
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.training:
            calls.append((module, id(module.running_mean), *_batch_stats(args[0])))

    mp, threads = pytest.MonkeyPatch(), torch.get_num_threads()
    mp.setattr(bnstats, "copy_of", spy)
    handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
    torch.set_num_threads(1)  # tiny batches gain nothing from a second thread (conftest's one_torch_thread)
    try:
        train(m, b8, tmp / "coral", TINY, live_dir=None, adapt=spec)
    finally:
        torch.set_num_threads(threads)
        handle.remove()
        mp.undo()
    return tmp, m, b8, spec, seen, calls


def _replay(calls, module, which: int, momentum: float):
    """The running statistics of one layer after its recorded batches: from 0 and 1 (a fresh layer),
    each update (1 - momentum) * running + momentum * batch."""
    mean, var, n = np.zeros(module.num_features), np.ones(module.num_features), 0
    for mod, ident, bm, bv in calls:
        if mod is module and ident == which:
            mean, var, n = (1 - momentum) * mean + momentum * bm, (1 - momentum) * var + momentum * bv, n + 1
    return mean, var, n


def test_an_arm_keeps_the_source_statistics_apart_and_saves_both(coral):
    tmp, *_, seen, calls = coral
    folder, model = tmp / "coral", seen["model"]
    meta = json.loads((folder / "model.json").read_text())
    assert meta["bn_statistics"] == {"target": "model.safetensors", "source": bnstats.SOURCE_NAME,
                                     "target_domain": "target"}
    source, own = load_file(folder / bnstats.SOURCE_NAME), load_file(folder / "model.safetensors")
    layers = [(n, mod) for n, mod in model.named_modules() if isinstance(mod, torch.nn.BatchNorm2d)]
    assert len(layers) > 5 and set(source) == set(bnstats.running_stats(model))
    for name, mod in layers:
        src_id, own_id = id(seen["source"][f"{name}.running_mean"]), id(mod.running_mean)
        for which, saved in ((src_id, source), (own_id, own)):
            mean, var, n = _replay(calls, mod, which, mod.momentum)
            assert n >= 4, (name, n)  # 2 epochs of 2 labelled batches, and as many pool batches
            np.testing.assert_allclose(saved[f"{name}.running_mean"].numpy(), mean, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(saved[f"{name}.running_var"].numpy(), var, rtol=1e-4, atol=1e-5)
            assert int(saved[f"{name}.num_batches_tracked"]) == n
    # the two sets differ: the source's followed the labelled batches, the target's the pool's alone
    first = f"{layers[0][0]}.running_mean"
    assert (source[first] - own[first]).abs().max() > 0.01


def _forward(model, meta, rows):
    return evaluate._probabilities(model, meta, rows, EVAL, torch.device("cpu"), "test")


@pytest.mark.usefixtures("one_torch_thread")
def test_evaluation_normalises_web_rows_with_the_source_statistics(coral, tmp_path):
    tmp, m, b8, *_ = coral
    folder = tmp / "coral"
    evaluate.evaluate(m, b8, folder, tmp_path / "p.parquet", EVAL)
    preds = io.read_table(tmp_path / "p.parquet", schema.PREDICTIONS)
    model, meta = models.load_trained(folder)
    with_source = copy.deepcopy(model)  # the source's statistics loaded by hand, not through bnstats
    with_source.load_state_dict({**model.state_dict(), **load_file(folder / bnstats.SOURCE_NAME)}, strict=True)
    rows = evaluate.select_rows(m, b8, None, meta["labels"], EVAL)
    web = pl.col("split").is_in(["train", "bridge"]) & (pl.col("domain") == "web")
    got = rows.select("image_id").join(preds, on="image_id", how="left")
    for sel, right, wrong in ((web, with_source, model), (~web, model, with_source)):
        part, mine = rows.filter(sel), got.filter(rows.select(sel).to_series())
        assert set(part["domain"]) == ({"web"} if right is with_source else {"target"})
        expected, other = _forward(right, meta, part), _forward(wrong, meta, part)
        np.testing.assert_allclose(mine["confidence"].to_numpy(), expected.max(1).values.double().numpy(),
                                   rtol=1e-5, atol=1e-6)
        assert mine["pred"].to_list() == [meta["labels"][i] for i in expected.argmax(1).tolist()]
        assert (expected - other).abs().max() > 1e-3  # the other set gives other probabilities (100x the tolerance)
    assert got.filter(rows["split"] == "train")["domain"].n_unique() == 2  # labelled target rows at budget 8


@pytest.mark.usefixtures("one_torch_thread")
def test_a_model_folder_without_the_second_set_evaluates_as_before(coral, tmp_path):
    tmp, m, b8, *_ = coral
    old = tmp_path / "old"
    shutil.copytree(tmp / "coral", old)
    (old / bnstats.SOURCE_NAME).unlink()
    meta = json.loads((old / "model.json").read_text())
    io.write_json(old / "model.json", {k: v for k, v in meta.items() if k != "bn_statistics"})
    evaluate.evaluate(m, b8, old, tmp_path / "p.parquet", EVAL)
    preds = io.read_table(tmp_path / "p.parquet", schema.PREDICTIONS)
    model, meta = models.load_trained(old)
    rows = evaluate.select_rows(m, b8, None, meta["labels"], EVAL)
    got = rows.select("image_id").join(preds, on="image_id", how="left")
    np.testing.assert_allclose(got["confidence"].to_numpy(),
                               _forward(model, meta, rows).max(1).values.double().numpy(), rtol=1e-5, atol=1e-6)


class _Stop(Exception):
    pass


@pytest.mark.usefixtures("one_torch_thread")
def test_an_interrupted_arm_resumes_both_sets_exactly(coral, tmp_path):
    tmp, m, b8, spec, *_ = coral

    def boom(epoch, batch):
        if epoch == 1 and batch == 1:
            raise _Stop

    with pytest.raises(_Stop):
        train(m, b8, tmp_path / "cut", TINY, live_dir=None, adapt=spec, on_batch=boom)
    train(m, b8, tmp_path / "cut", TINY, live_dir=None, adapt=spec, resume=True)
    for name in ("model.safetensors", bnstats.SOURCE_NAME):
        full, resumed = load_file(tmp / "coral" / name), load_file(tmp_path / "cut" / name)
        assert full.keys() == resumed.keys() and all(torch.equal(full[k], resumed[k]) for k in full), name
    # a resume point written before the arms kept the source's set cannot continue exactly: refused
    state = torch.load(tmp_path / "cut" / "state.pt", weights_only=True)
    torch.save({k: v for k, v in state.items() if k != "source_bn"}, tmp_path / "cut" / "state.pt")
    with pytest.raises(ConfigError, match="holds no source batch-norm statistics"):
        train(m, b8, tmp_path / "cut", TINY, live_dir=None, adapt=spec, resume=True)
