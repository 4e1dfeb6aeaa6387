"""``shiftkit models``: the per-layer arithmetic of CNNs against real forward passes and timm's counts."""

import json
import math

import pytest
import torch
from torch import nn

from shiftkit.core.errors import ConfigError
from shiftkit.training import arch
from tests.helpers import assert_bad_input, run_cli

torch.set_num_threads(1)


def test_out_size_formula_matches_torch_convolutions_and_pools():
    x = torch.zeros(1, 1, 1, 1)
    checked = 0
    for n in range(1, 13):
        x = torch.zeros(1, 1, n, n)
        for f in (1, 2, 3, 5):
            for s in (1, 2, 3):
                for p in (0, 1, 2):
                    for d in (1, 2):
                        try:
                            got = nn.functional.conv2d(x, torch.zeros(1, 1, f, f), stride=s, padding=p,
                                                       dilation=d).shape[-1]
                        except RuntimeError:
                            got = 0
                        assert arch.out_size(n, f, s, 2 * p, d) == got, (n, f, s, p, d)
                        if 2 * p > f:  # torch: padding at most half the kernel
                            continue
                        for ceil in (False, True):
                            try:
                                got = nn.functional.max_pool2d(x, f, s, p, d, ceil_mode=ceil).shape[-1]
                            except RuntimeError:
                                got = 0
                            assert arch.out_size(n, f, s, 2 * p, d, ceil) == got, (n, f, s, p, d, ceil)
                            checked += 1
    assert checked > 500


def test_lenet5_by_hand():
    a = arch.analyse("lenet5", 32, 1, 10)
    assert [(la.op, la.in_formula[0], la.out_formula[0]) for la in a.layers] == [
        ("conv", 32, 28), ("avgpool", 28, 14), ("conv", 14, 10), ("avgpool", 10, 5), ("conv", 5, 1)]
    assert [la.weights + la.biases for la in a.layers if la.op == "conv"] == [5 * 5 * 6 + 6, 5 * 5 * 6 * 16 + 16,
                                                                             5 * 5 * 16 * 120 + 120]
    assert [la.receptive_field for la in a.layers] == [5, 6, 14, 16, 32]
    assert a.params == a.params_torch == 61_706
    assert a.macs == 28 * 28 * 6 * 25 + 10 * 10 * 16 * 150 + 120 * 400 + 120 * 84 + 84 * 10
    assert a.min_input == 32 and "checked" in a.min_input_how and a.mismatches == 0


# timm CNNs of different families: plain and "tiered" ResNets (average-pool shortcuts in ceil mode),
# depthwise and squeeze-excitation blocks, TensorFlow "same" padding, dense concatenation
@pytest.mark.parametrize("name, size, published", [
    ("resnet10t", 48, None), ("resnet50", 40, 25_557_032), ("efficientnet_b0", 48, 5_288_548),
    ("tf_efficientnet_b0", 45, 5_288_548), ("densenet121", 40, 7_978_856), ("mobilenetv3_small_050", 48, None),
])
def test_timm_models_sizes_match_the_forward_pass_and_counts_match_timm(name, size, published):
    a = arch.analyse(name, size)
    model = arch.build(name, size)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len([la for la in a.layers if la.op == "conv"]) == len(convs)  # no convolution left out
    assert a.layers and all(la.in_formula is not None for la in a.layers)
    for la in a.layers:
        assert la.out_formula == la.out_measured, la
    assert a.mismatches == 0
    assert a.params == a.params_torch == sum(p.numel() for p in model.parameters())
    if published:
        assert a.params == published
    assert sum(la.weights + la.biases for la in a.layers) == sum(m.weight.numel() + (
        m.bias.numel() if m.bias is not None else 0) for m in convs)
    assert a.min_input is not None and "checked" in a.min_input_how
    rf = [la.receptive_field for la in a.layers if not math.isinf(la.receptive_field)]
    assert rf == sorted(rf) or name.startswith(("resnet", "densenet"))  # shortcuts see less than the main path


def test_a_layer_without_a_formula_is_reported_not_hidden():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3, stride=2)

        def forward(self, x):
            x = nn.functional.interpolate(self.a(x), scale_factor=1.5)  # no formula here
            return self.b(x).mean((2, 3))

    trace = arch._watch(Odd().eval(), torch.zeros(1, 3, 20, 20))
    first, second = trace.layers
    assert first.matches and first.out_formula == (18, 18)
    assert second.in_formula is None and second.in_measured == (27, 27) and not second.matches
    assert arch.replay(trace.ops, 20) is None  # the smallest input cannot come from the formula


def test_smallest_input_is_checked_by_forward_passes():
    a = arch.analyse("densenet121", 64)
    assert a.min_input == 29  # stem /4, three transitions /2: 29 -> 15 -> 8 -> 4 -> 2 -> 1
    assert arch._runs("densenet121", 29, 3) and not arch._runs("densenet121", 28, 3)
    with pytest.raises(ConfigError, match="--img-size 16 is too small for 'densenet121'.*it takes 29 px and more"):
        arch.analyse("densenet121", 16)


def test_candidate_table_matches_real_counts():
    for name, params, macs in arch.CANDIDATES:
        a = arch.analyse(name, 224, find_smallest=False)
        assert (a.params_torch, a.macs) == (params, macs), name
    macs = [m for _, _, m in arch.CANDIDATES]
    assert macs == sorted(macs)
    assert [n for n, _, _ in arch.bigger_models("resnet18", count=2)] == ["resnet26", "densenet121"]


def test_models_command_prints_every_layer_and_writes_json_and_png(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    r = run_cli(["models", "lenet5", "resnet10t", "--img-size", "32", "--channels", "3", "--classes", "10",
                 "--seconds", "0.05", "--threads", "1", "--out", tmp_path])
    assert r.code == 0, r.stderr
    out = json.loads((tmp_path / "models.json").read_text())
    by = {m["name"]: m for m in out["models"]}
    assert by["resnet10t"]["mismatches"] == 0 and len(by["resnet10t"]["layers"]) == 18
    assert by["resnet10t"]["params"] == by["resnet10t"]["params_torch"]
    assert by["lenet5"]["train_img_s"] > 0 and by["resnet10t"]["infer_img_s"] > 0
    assert (tmp_path / "models.png").read_bytes()[:4] == b"\x89PNG"
    text = r.stdout + r.stderr
    assert "layer4.0.conv2" in text and "smallest input" in text
    assert text.count(" = │") == 5 + 18  # every layer's forward size, and each agrees


@pytest.mark.parametrize("args, names", [
    (["resnet10x"], ["resnet10x", "resnet10t"]),
    (["lenet5", "--img-size", "20"], ["lenet5", "--img-size 20"]),
    (["resnet10t", "--img-size", "0"], ["--img-size"]),
    (["resnet10t", "--metrics", "resnet10t"], ["--metrics", "NAME=path"]),
    (["resnet10t", "--metrics", "resnet10t=nowhere.json"], ["nowhere.json"]),
])
def test_models_bad_input_exits_2_with_one_line(args, names):
    assert_bad_input(run_cli(["models", *args, "--no-speed", "--no-layers"]), *names)


def test_report_names_bigger_candidates_after_the_trained_model(tmp_path):
    from shiftkit.report.params import ReportParams
    from shiftkit.report.stage import build_report
    from tests.report_helpers import make_predictions, write_predictions

    spec = {s: (2000, e) for s, e in (("train", 0.12), ("bridge", 0.13), ("dev", 0.14), ("test", 0.14))}
    pred = write_predictions(make_predictions(spec), tmp_path / "p.parquet")
    data = build_report(pred, params=ReportParams(human_error=0.01), model="resnet10t", img_size=112)
    rec = data.recommendations[0]
    assert data.decomposition.diagnosis == "avoidable_bias" and rec.title == "Train a bigger model"
    assert "than resnet10t at 112 px: resnet14t (10.1 M parameters, 0.42 G" in rec.detail  # 1.68 G / 4
    assert "resnet18" in rec.detail and "resnet26" in rec.detail and "shiftkit models" in rec.detail
