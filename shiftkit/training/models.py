"""timm models: create by name, load pretrained weights, new head, freeze and unfreeze.

The only module that imports timm. A model is always created with the head for *our* labels;
pretrained weights (timm's hub, a local safetensors / torch state dict, or a shiftkit model
folder) are loaded into everything but the classifier, whose shape belongs to another task.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from shiftkit.core.errors import ModelError

WEIGHTS_NAME = "model.safetensors"
META_NAME = "model.json"


def check_model_name(name: str) -> None:
    """Raise unless ``name`` is a timm architecture (or ``arch.tag``).

    Raises:
        ModelError: naming the closest registered names.
    """
    arch = name.split(".", 1)[0]
    if timm.is_model(arch):
        return
    close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
    hint = f" Did you mean {', '.join(close)}?" if close else " See timm.list_models()."
    raise ModelError(f"The 'train.model' parameter must be a timm model name. Got {name!r} instead.{hint}")


def _classifier_names(model: nn.Module) -> list[str]:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    names = cfg.get("classifier") or []
    return [names] if isinstance(names, str) else list(names)


def classifier_parameters(model: nn.Module) -> list[str]:
    """Names of the parameters of the classifier (the head replaced for our labels)."""
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    ids = {id(p) for p in head.parameters()} if isinstance(head, nn.Module) else set()
    names = [n for n, p in model.named_parameters() if id(p) in ids]
    if not names:  # a model without get_classifier: fall back on pretrained_cfg['classifier']
        prefixes = tuple(f"{c}." for c in _classifier_names(model))
        names = [n for n, _ in model.named_parameters() if n.startswith(prefixes)]
    return names


def _hub_weights_cached(model_name: str) -> bool:
    """Whether timm's hub weights for ``model_name`` are already in the local HF cache."""
    try:
        from huggingface_hub import try_to_load_from_cache

        cfg = timm.models.get_pretrained_cfg(model_name)
    except (ImportError, RuntimeError):
        return False
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub_id:
        return False
    for fname in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
        hit = try_to_load_from_cache(hub_id, fname)
        if isinstance(hit, str):
            return True
    return False


def _hub_unreachable(timeout: float = 3.0) -> str | None:
    """Why the model hub cannot be reached, or None. One short TCP connect: the hub client
    would otherwise retry with back-off for a minute or more before giving up."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return None
    except OSError as exc:
        return f"{url.hostname}:{port} unreachable: {exc.strerror or exc}"


def _offline() -> bool:
    return any(
        os.environ.get(v, "").lower() in ("1", "true", "yes", "on") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def read_state_dict(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """Tensors of a checkpoint and, for a shiftkit model, its metadata.

    ``path`` is a safetensors file, a torch file holding a state dict (read with
    ``weights_only=True``: no code is unpickled), or a shiftkit model folder.

    Raises:
        ModelError: when the path is missing or the file is corrupt or not a checkpoint.
    """
    p = Path(path)
    meta = None
    if p.is_dir():
        if not (p / WEIGHTS_NAME).is_file():
            raise ModelError(f"Checkpoint folder {p} has no {WEIGHTS_NAME}; expected a shiftkit model folder.")
        if (p / META_NAME).is_file():
            meta = read_meta(p / META_NAME)
        p = p / WEIGHTS_NAME
    elif p.name == WEIGHTS_NAME and (p.parent / META_NAME).is_file():
        meta = read_meta(p.parent / META_NAME)
    if not p.is_file():
        raise ModelError(
            f"Checkpoint {p} does not exist; the 'pretrained' parameter must be true, false or the path of a "
            f"safetensors / torch state-dict file."
        )
    if p.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(p))), meta
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise ModelError(
                f"Checkpoint {p} is corrupt or not a safetensors file: {str(exc).splitlines()[0]}"
            ) from exc
    obj = _torch_load(p)
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "state_dict_ema"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelError(f"Checkpoint {p} holds no state dict of tensors.")
    # weights saved from DataParallel / DDP carry a 'module.' prefix
    return {k.removeprefix("module."): v for k, v in obj.items()}, meta


def _torch_load(p: Path) -> Any:
    """``torch.load`` with ``weights_only=True`` (no code is unpickled), with its warnings silenced
    (a pickle of another protocol warns in two lines before it is refused) and every failure
    turned into one ModelError."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - text, pickles and damaged files fail in many ways; all mean: unusable
        found = re.search(r"GLOBAL (\S+)", str(exc))
        why = f"it holds the Python object {found.group(1)}: refused, loading it could run code" if found else (
            f"{type(exc).__name__} while unpickling it"
        )
        raise ModelError(
            f"Checkpoint {p} is not a safetensors file or a torch state dict that loads without running code "
            f"({why[:160]}); the 'pretrained' parameter must be true, false or the path of such a file."
        ) from exc


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The json metadata written beside a shiftkit model.

    Raises:
        ModelError: when it is missing or not valid json.
    """
    p = Path(path)
    try:
        meta = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"Model metadata {p} is missing or not valid json: {exc}") from exc
    if not isinstance(meta, dict):
        raise ModelError(f"Model metadata {p} holds {type(meta).__name__} {str(meta)[:40]}; expected a json object.")
    for key in ("model", "labels", "img_size", "channels", "mean", "std"):
        if key not in meta:
            raise ModelError(f"Model metadata {p} lacks the key {key!r}; was it written by shiftkit train?")
    _check_meta(meta, p)
    return meta


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_meta(meta: dict[str, Any], p: Path) -> None:
    """Each value of model.json as shiftkit train writes it (a hand-edited file is refused by name)."""

    def bad(key: str, expected: str) -> ModelError:
        return ModelError(f"Model metadata {p}: {key} is {str(meta[key])[:60]!r}; expected {expected}.")

    if not isinstance(meta["model"], str) or not meta["model"]:
        raise bad("model", "a timm model name")
    labels = meta["labels"]
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise bad("labels", "a non-empty list of label names")
    if len(set(labels)) != len(labels):
        raise bad("labels", "each label once")
    size = meta["img_size"]
    if not isinstance(size, int) or isinstance(size, bool) or not 8 <= size <= 4096:
        raise bad("img_size", "an integer from 8 to 4096 (train.img_size)")
    channels = meta["channels"]
    if channels not in (1, 3) or isinstance(channels, bool):
        raise bad("channels", "1 or 3")
    for key in ("mean", "std"):
        v = meta[key]
        if not isinstance(v, list) or len(v) != channels or not all(_number(x) for x in v):
            raise bad(key, f"a list of {channels} finite number(s), one per channel")
    if not all(x > 0 for x in meta["std"]):
        raise bad("std", "positive numbers (a zero std divides by zero: NaN confidences)")


def _load_backbone(model: nn.Module, state: dict[str, torch.Tensor], source: str, in_chans: int) -> None:
    """Load ``state`` into everything but the classifier (strict about the rest)."""
    head = set(classifier_parameters(model))
    head_prefixes = tuple(n.rsplit(".", 1)[0] + "." for n in head)
    own = model.state_dict()
    first_conv = (getattr(model, "pretrained_cfg", None) or {}).get("first_conv")
    kept = {}
    for key, value in state.items():
        if key in head or key.startswith(head_prefixes):
            continue
        if key in own and first_conv and key == f"{first_conv}.weight" and value.ndim == 4:
            if value.shape[1] != own[key].shape[1]:
                value = timm.models.adapt_input_conv(in_chans, value, base_chans=value.shape[1])
        kept[key] = value
    missing = [k for k in own if k not in kept and k not in head and not k.startswith(head_prefixes)]
    unexpected = [k for k in kept if k not in own]
    wrong = [k for k in kept if k in own and tuple(kept[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            parts.append(f"{len(wrong)} of another shape (e.g. {wrong[0]})")
        raise ModelError(
            f"Checkpoint {source} does not fit model {type(model).__name__}: {'; '.join(parts)} tensors. "
            f"Is 'train.model' the architecture it was trained with?"
        )
    model.load_state_dict(kept, strict=False)


def create_model(
    name: str,
    num_classes: int,
    *,
    in_chans: int = 3,
    pretrained: bool | str | os.PathLike[str] = False,
) -> nn.Module:
    """A timm model with a fresh classifier for ``num_classes`` labels.

    ``pretrained``: ``True`` loads timm's hub weights (offline only from the local HF cache),
    a path loads a local checkpoint (see :func:`read_state_dict`) into all but the classifier,
    ``False`` starts from random weights.

    Raises:
        ModelError: on an unknown model name, unreachable hub weights, or a checkpoint that is
            corrupt or does not fit the architecture.
    """
    check_model_name(name)
    if num_classes < 1:
        raise ModelError(f"A model needs at least one label. Got {num_classes} instead.")
    if pretrained is True:
        if not _hub_weights_cached(name):
            why = "HF_HUB_OFFLINE is set" if _offline() else _hub_unreachable()
            if why:
                raise ModelError(
                    f"Pretrained weights for {name!r} are not in the local Hugging Face cache and the hub is offline "
                    f"({why}); set 'train.pretrained' to a local checkpoint path or to false, or pre-download them "
                    f"into the HF cache."
                )
        # short timeouts: an unreachable hub must fail in seconds, not minutes
        os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "5")
        os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "10")
        try:
            return timm.create_model(name, pretrained=True, num_classes=num_classes, in_chans=in_chans)
        except (OSError, RuntimeError, ValueError) as exc:
            raise ModelError(
                f"Cannot fetch pretrained weights for {name!r} from the hub ({type(exc).__name__}); "
                f"set 'train.pretrained' to a local checkpoint path or to false, or pre-download them into the "
                f"HF cache."
            ) from exc
    model = timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_chans)
    if pretrained is False or pretrained is None:
        return model
    path = Path(str(pretrained))
    state, meta = read_state_dict(path)
    if meta is not None and meta.get("model", "").split(".")[0] != name.split(".")[0]:
        raise ModelError(
            f"Checkpoint {path} holds a {meta.get('model')!r} model, but 'train.model' is {name!r}; "
            f"use the same architecture."
        )
    _load_backbone(model, state, str(path), in_chans)
    return model


def load_trained(model_dir: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, Any]]:
    """A model written by ``shiftkit train`` (head included) and its metadata, in eval mode.

    Raises:
        ModelError: when the folder lacks the files or they are corrupt or do not fit.
    """
    d = Path(model_dir)
    meta = read_meta(d / META_NAME) if (d / META_NAME).is_file() else None
    if meta is None:
        raise ModelError(f"Model folder {d} has no {META_NAME}; expected the output of shiftkit train.")
    state, _ = read_state_dict(d / WEIGHTS_NAME)
    check_model_name(meta["model"])
    model = timm.create_model(
        meta["model"], pretrained=False, num_classes=len(meta["labels"]), in_chans=meta["channels"]
    )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(
            f"Checkpoint {d / WEIGHTS_NAME} does not fit the {meta['model']!r} model of {d / META_NAME}: "
            f"{str(exc).splitlines()[0]}"
        ) from exc
    return model.eval(), meta


def data_config(model: nn.Module, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Normalisation (mean, std) of the model's pretrained config, for 1 or 3 channels."""
    from timm.data import resolve_data_config

    cfg = resolve_data_config({}, model=model)
    mean, std = tuple(float(v) for v in cfg["mean"]), tuple(float(v) for v in cfg["std"])
    if channels == 1 and len(mean) != 1:
        # a grey image is the mean of the channels; timm's adapt_input_conv sums the weights
        mean, std = (sum(mean) / len(mean),), (sum(std) / len(std),)
    return mean, std


# ---------------------------------------------------------------------------------------------
# freezing


def freeze_backbone(model: nn.Module) -> list[str]:
    """Only the classifier trains; returns the names of the trainable parameters."""
    head = set(classifier_parameters(model))
    for n, p in model.named_parameters():
        p.requires_grad_(n in head)
    return sorted(head)


def stage_modules(model: nn.Module) -> list[str]:
    """Names of the model's stages in forward order, from timm's feature_info."""
    info = getattr(model, "feature_info", None)
    if info is None:
        return []
    if hasattr(info, "module_name"):
        return [info.module_name(i) for i in range(len(info))]
    return [f["module"] for f in info]


def unfreeze(model: nn.Module, last_stages: int = 0) -> list[str]:
    """Unfreeze everything (``last_stages=0``) or the last K stages and all that follows them.

    Stages come from timm's feature_info; the parameters are in forward order, so everything
    from the first parameter of the K-th last stage onwards (head included) trains.

    Raises:
        ModelError: when K is larger than the number of stages.
    """
    names = [n for n, _ in model.named_parameters()]
    start = 0
    if last_stages > 0:
        stages = [s for s in stage_modules(model) if any(n.startswith(s + ".") for n in names)]
        if last_stages > len(stages):
            raise ModelError(
                f"The 'train.unfreeze_stages' parameter must be at most {len(stages)} for this model "
                f"(stages: {', '.join(stages)}). Got {last_stages} instead."
            )
        first = stages[-last_stages]
        start = next(i for i, n in enumerate(names) if n.startswith(first + "."))
    trainable = []
    for i, (n, p) in enumerate(model.named_parameters()):
        p.requires_grad_(i >= start)
        if i >= start:
            trainable.append(n)
    return trainable


def param_groups(model: nn.Module, lr: float, weight_decay: float, layer_decay: float = 1.0) -> list[dict[str, Any]]:
    """Optimizer parameter groups of the trainable parameters: no weight decay on biases and
    norms, and with ``layer_decay < 1`` a learning rate that shrinks towards the input (timm's
    layer-wise decay groups)."""
    from timm.optim import param_groups_layer_decay, param_groups_weight_decay

    if layer_decay < 1.0:
        groups = param_groups_layer_decay(model, weight_decay=weight_decay, layer_decay=layer_decay)
    else:
        groups = param_groups_weight_decay(model, weight_decay=weight_decay)
    out = []
    for g in groups:
        params = [p for p in g["params"] if p.requires_grad]
        if params:
            out.append({**g, "params": params, "lr": lr * float(g.get("lr_scale", 1.0))})
    return out


def trainable_names(model: nn.Module) -> Iterable[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


# ---------------------------------------------------------------------------------------------
# inference


@torch.no_grad()
def predict(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, Any]],
    amp_dtype: torch.dtype | None = None,
    *,
    max_batches: int = 0,
    progress=None,
    task=None,
) -> torch.Tensor:
    """Class probabilities (N, classes), float32 on the CPU, in the order of ``batches`` (eval mode).

    ``batches`` yields (model input, anything) pairs already on the model's device; the first
    ``max_batches`` are used when > 0; ``progress.update(task, ...)`` follows along when given.
    """
    from shiftkit.core.console import rate_text

    was_training = model.training
    model.eval()
    out = []
    done, t0 = 0, time.perf_counter()
    try:
        for b, (x, _) in enumerate(batches):
            if max_batches and b >= max_batches:
                break
            with torch.autocast(x.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                logits = model(x)
            out.append(torch.softmax(logits.float(), dim=1).cpu())
            done += x.shape[0]
            if progress is not None:
                progress.update(task, advance=x.shape[0], rate=rate_text(done, time.perf_counter() - t0))
    finally:
        model.train(was_training)
    if not out:
        return torch.empty((0, 0))
    return torch.cat(out)
