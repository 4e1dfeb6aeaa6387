import time

import pytest
import torch
from safetensors.torch import save_file

from shiftkit.core.errors import ModelError
from shiftkit.training import models

ARCH = "resnet10t"


def _backbone(state):
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


@pytest.mark.parametrize(
    "name, hint",
    [
        ("resnet10", "resnet10t"),
        ("mobilenetv3_smal_050", "mobilenetv3_small_050"),
        ("zzzz_not_a_model", "timm.list_models"),
    ],
    ids=["typo", "missing-letter", "nothing-close"],
)
def test_unknown_model_name_suggests_close_names(name, hint):
    with pytest.raises(ModelError, match=f"Got '{name}' instead.*{hint}"):
        models.create_model(name, 10)


@pytest.mark.parametrize(
    "env, why",
    [
        ({"HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE is set"),
        ({"HF_ENDPOINT": "http://127.0.0.1:9"}, "127.0.0.1:9 unreachable"),
    ],
    ids=["offline-flag", "hub-unreachable"],
)
def test_hub_weights_offline_fail_fast_with_the_fix(monkeypatch, tmp_path, env, why):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    t0 = time.perf_counter()
    with pytest.raises(ModelError, match=f"{why}.*local checkpoint path or to false, or pre-download"):
        models.create_model(ARCH, 10, pretrained=True)
    assert time.perf_counter() - t0 < 10  # no minute of hub retries


def test_safetensors_checkpoint_loads_backbone_with_a_new_head(tmp_path):
    src = models.create_model(ARCH, 5)
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    dst = models.create_model(ARCH, 10, pretrained=path)
    assert dst.get_classifier().out_features == 10
    for k, v in _backbone(src.state_dict()).items():
        assert torch.equal(v, dst.state_dict()[k]), k


def test_torch_state_dict_with_wrapper_and_ddp_prefix(tmp_path):
    src = models.create_model(ARCH, 3)
    path = tmp_path / "w.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, path)
    dst = models.create_model(ARCH, 4, pretrained=str(path))
    assert torch.equal(dst.state_dict()["conv1.0.weight"], src.state_dict()["conv1.0.weight"])


def test_grey_model_from_an_rgb_checkpoint_sums_the_first_conv(tmp_path):
    src = models.create_model(ARCH, 3, in_chans=3)
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    dst = models.create_model(ARCH, 3, in_chans=1, pretrained=path)
    w = dst.state_dict()["conv1.0.weight"]
    assert w.shape[1] == 1
    assert torch.allclose(w, src.state_dict()["conv1.0.weight"].sum(1, keepdim=True))


@pytest.mark.parametrize(
    "name, content, match",
    [
        ("junk.safetensors", b"\x00" * 64, "corrupt or not a safetensors file"),
        ("junk.pth", b"not a zip at all", "not a safetensors file or a torch state dict"),
        # text files reach torch's unpickler, which fails with IndexError / KeyError on them
        ("weights.txt", b"a,b,c\n1,2,3\n", r"weights.txt is not a safetensors file .*IndexError"),
        ("notes.txt", b"hello world\n", r"notes.txt is not a safetensors file .*KeyError"),
        ("empty.pt", b"", "empty.pt is not a safetensors file"),
    ],
    ids=["safetensors", "torch", "csv-text", "plain-text", "empty"],
)
def test_corrupt_checkpoint(tmp_path, name, content, match):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(ModelError, match=match):
        models.create_model(ARCH, 10, pretrained=p)


class _Evil:  # a pickled object that weights_only=True must refuse to rebuild
    pass


def test_torch_file_with_code_is_refused(tmp_path):
    p = tmp_path / "evil.pt"
    torch.save({"x": _Evil()}, p)
    with pytest.raises(ModelError, match=r"evil.pt .*_Evil: refused, loading it could run code"):
        models.create_model(ARCH, 10, pretrained=p)


@pytest.mark.parametrize("kind", ["text", "pickle"])
def test_cli_pretrained_text_or_pickle_is_one_line_exit_2(tmp_path, capsys, kind):
    # one line on stderr, exit 2, and no torch UserWarning about the pickle protocol first
    import pickle
    import warnings

    from shiftkit.cli import run as cli
    from tests.train_helpers import build_example

    m, s = build_example(tmp_path, n_web=20, n_target=20, n_dev=5, n_test=5, n_bridge=0)
    bad = tmp_path / ("weights.txt" if kind == "text" else "weights.pkl")
    if kind == "text":
        bad.write_text("a,b,c\n1,2,3\n")
    else:
        bad.write_bytes(pickle.dumps({"conv1.weight": [1.0, 2.0]}, protocol=4))
    args = ["train", "--manifest", str(m), "--splits", str(s), "--out", str(tmp_path / "o"), "--pretrained", str(bad)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = cli.main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and bad.name in err and "Traceback" not in err
    assert [str(w.message) for w in caught] == []
    assert not (tmp_path / "o" / "model.safetensors").exists()


def test_checkpoint_of_another_architecture(tmp_path):
    other = models.create_model("resnet18", 10)
    p = tmp_path / "r18.safetensors"
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(p))
    with pytest.raises(ModelError, match="does not fit model"):
        models.create_model(ARCH, 10, pretrained=p)


def test_missing_checkpoint_names_the_choices(tmp_path):
    with pytest.raises(ModelError, match="does not exist.*true, false or the path"):
        models.create_model(ARCH, 10, pretrained=tmp_path / "nope.safetensors")


def test_freeze_and_unfreeze_last_stages():
    m = models.create_model(ARCH, 10)
    assert models.freeze_backbone(m) == ["fc.bias", "fc.weight"]
    assert sorted(models.trainable_names(m)) == ["fc.bias", "fc.weight"]
    last = models.unfreeze(m, 1)
    assert last[0].startswith("layer4.") and last[-1] == "fc.bias"
    assert not any(n.startswith(("layer3.", "conv1.")) for n in models.trainable_names(m))
    assert len(models.unfreeze(m, 0)) == len(list(m.parameters()))
    with pytest.raises(ModelError, match=r"at most 4 for this model \(stages: layer1, layer2, layer3, layer4\)"):
        models.unfreeze(m, 5)


def test_layer_decay_lowers_the_learning_rate_towards_the_input():
    m = models.create_model(ARCH, 10)
    models.unfreeze(m, 0)
    flat = models.param_groups(m, 1e-3, 0.05)
    assert {g["lr"] for g in flat} == {1e-3}
    assert sum(len(g["params"]) for g in flat) == len(list(m.parameters()))
    decayed = models.param_groups(m, 1e-3, 0.05, layer_decay=0.5)
    lrs = sorted({g["lr"] for g in decayed})
    assert lrs[-1] == pytest.approx(1e-3) and lrs[0] < 1e-4
    # biases and norms carry no weight decay
    assert any(g["weight_decay"] == 0.0 for g in decayed)


def test_normalisation_from_the_pretrained_config():
    m = models.create_model(ARCH, 10)
    mean, std = models.data_config(m, 3)
    assert mean == pytest.approx((0.485, 0.456, 0.406))
    grey_mean, grey_std = models.data_config(m, 1)
    assert grey_mean == pytest.approx((sum(mean) / 3,)) and len(grey_std) == 1
