"""params.yaml -> frozen dataclasses. The only module that reads a settings file.

Each top-level section of params.yaml maps to one frozen dataclass registered with
``@section("name")``. Values are type-checked against the dataclass annotations and range-checked
in ``__post_init__``; an unknown key or section raises a ``ConfigError`` that lists the valid
ones. Library functions take these dataclasses (or plain arguments), never a path to params.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from shiftkit.errors import ConfigError, InputPathError

_SECTIONS: dict[str, type] = {}


def section(name: str):
    """Register a frozen dataclass as the schema of params.yaml section ``name``."""

    def deco(cls: type) -> type:
        if name in _SECTIONS:
            raise ConfigError(f"Params section {name!r} is registered twice.")
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__name__} must be a dataclass to be a params section")
        _SECTIONS[name] = cls
        return cls

    return deco


def section_names() -> list[str]:
    return sorted(_SECTIONS)


# ---------------------------------------------------------------------------------------------
# validation helpers (used by the sections' __post_init__)


def check_fraction(where: str, value: float, *, closed_low: bool = False, closed_high: bool = False) -> None:
    """Raise unless ``value`` is in (0, 1), with the ends included when asked."""
    lo_ok = value >= 0 if closed_low else value > 0
    hi_ok = value <= 1 if closed_high else value < 1
    if not (lo_ok and hi_ok):
        lo, hi = ("[" if closed_low else "("), ("]" if closed_high else ")")
        raise ConfigError(f"The {where!r} parameter must be a fraction in {lo}0, 1{hi}. Got {value!r} instead.")


def check_positive(where: str, value: float, *, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"The {where!r} parameter must be {bound}. Got {value!r} instead.")


def check_choice(where: str, value: Any, choices: typing.Iterable[Any]) -> None:
    choices = list(choices)
    if value not in choices:
        raise ConfigError(
            f"The {where!r} parameter must be one of {', '.join(map(repr, choices))}. Got {value!r} instead."
        )


# ---------------------------------------------------------------------------------------------
# building dataclasses from plain mappings


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        allowed = " or ".join(_type_name(a) for a in args)
        raise ConfigError(f"The {where!r} parameter must be {allowed}. Got {value!r} instead.")
    if origin is Literal:
        check_choice(where, value, args)
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"The {where!r} parameter must be a mapping. Got {value!r} instead.")
        return build(tp, value, where)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"The {where!r} parameter must be a list. Got {value!r} instead.")
        item_tp = args[0] if args else Any
        items = [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items)
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"The {where!r} parameter must be a mapping. Got {value!r} instead.")
        ktp, vtp = (args or (Any, Any))
        return {_coerce(k, ktp, where): _coerce(v, vtp, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"The {where!r} parameter must be true or false. Got {value!r} instead.")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"The {where!r} parameter must be an integer. Got {value!r} instead.")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"The {where!r} parameter must be a number. Got {value!r} instead.")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"The {where!r} parameter must be a string. Got {value!r} instead.")
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"The {where!r} parameter must be {_type_name(tp)}. Got {value!r} instead.")


def build(cls: type, values: Mapping[str, Any] | None, where: str = ""):
    """Build dataclass ``cls`` from a mapping, checking names and types.

    Raises:
        ConfigError: on an unknown key, a missing required key or a value of the wrong type.
    """
    values = dict(values or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"Unknown parameter(s) {', '.join(f'{where}.{u}' if where else u for u in unknown)}; "
            f"valid ones{' in ' + where if where else ''}: {', '.join(sorted(fields))}."
        )
    kwargs = {}
    for name, f in fields.items():
        key = f"{where}.{name}" if where else name
        if name in values:
            kwargs[name] = _coerce(values[name], hints[name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"Missing required parameter {key!r}.")
    return cls(**kwargs)


class Params:
    """All sections of params.yaml, each a frozen dataclass: ``params.split.seed``."""

    def __init__(self, sections: Mapping[str, Any], source: str | None = None) -> None:
        self._sections = dict(sections)
        self.source = source

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._sections[name]
        except KeyError:
            if name in _SECTIONS:
                return _SECTIONS[name]()
            raise AttributeError(f"params has no section {name!r}; sections: {', '.join(section_names())}") from None

    def replace(self, name: str, **changes: Any) -> Params:
        """A copy with fields of one section replaced (validated like params.yaml values)."""
        current = getattr(self, name)
        merged = {**dataclasses.asdict(current), **changes}
        new = dict(self._sections)
        new[name] = build(_SECTIONS[name], merged, name)
        return Params(new, self.source)

    def as_dict(self) -> dict[str, Any]:
        return {k: dataclasses.asdict(v) for k, v in sorted(self._sections.items())}


def params_from_mapping(data: Mapping[str, Any] | None, source: str | None = None) -> Params:
    """Validate a params mapping (as from params.yaml).

    Raises:
        ConfigError: on an unknown section or key, or a value out of range.
    """
    data = dict(data or {})
    unknown = sorted(set(data) - set(_SECTIONS))
    if unknown:
        raise ConfigError(
            f"Unknown section(s) {', '.join(unknown)} in {source or 'params'}; "
            f"valid sections: {', '.join(section_names())}."
        )
    sections = {}
    for name, cls in _SECTIONS.items():
        raw = data.get(name)
        if raw is not None and not isinstance(raw, Mapping):
            raise ConfigError(f"Section {name!r} of {source or 'params'} must be a mapping. Got {raw!r}.")
        sections[name] = build(cls, raw, name)
    return Params(sections, source)


def load_params(path: str | Path | None = "params.yaml") -> Params:
    """Read and validate params.yaml. ``None``, or a missing default file, gives the defaults.

    Raises:
        InputPathError: when a path other than the default is given and does not exist.
        ConfigError: when the file is not valid YAML or holds invalid values.
    """
    if path is None:
        return params_from_mapping({}, None)
    p = Path(path)
    if not p.is_file():
        if str(path) == "params.yaml":
            return params_from_mapping({}, None)
        raise InputPathError(f"Params file {p} does not exist.")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"Params file {p} is not valid YAML: {exc}") from exc
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError(f"Params file {p} must hold a mapping of sections. Got {type(data).__name__}.")
    return params_from_mapping(data, str(p))


def parse_assignments(pairs: typing.Iterable[str], what: str = "--domain") -> dict[str, str]:
    """Parse ``NAME=VALUE`` strings (as in ``--domain web=data/web``).

    Raises:
        ConfigError: on a pair without ``=``, an empty name or value, or a repeated name.
    """
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise ConfigError(f"{what} must be NAME=PATH (for example web=data/web). Got {pair!r} instead.")
        if name in out:
            raise ConfigError(f"{what} names {name!r} twice.")
        out[name] = value
    return out


frozen = dataclasses.dataclass(frozen=True)


# =============================================================================================
# Sections. Each stage owns one block below; keep blocks apart so that edits merge cleanly.
# =============================================================================================


# --- example -----------------------------------------------------------------------------------


@section("example")
@frozen
class ExampleParams:
    """The embedded example data set (MNIST as web, scikit-learn's load_digits as target)."""

    web_images: int = 12000  # how many MNIST digits to write (at most the shipped subset)
    target_images: int = 1797  # how many load_digits images to write (at most 1797)
    seed: int = 0

    def __post_init__(self) -> None:
        check_positive("example.web_images", self.web_images)
        check_positive("example.target_images", self.target_images)
        if self.target_images > 1797:
            raise ConfigError(
                f"The 'example.target_images' parameter must be at most 1797 (load_digits' size). "
                f"Got {self.target_images} instead."
            )


# --- ingest ------------------------------------------------------------------------------------


@section("ingest")
@frozen
class IngestParams:
    """Decoding limits, duplicate detection and parallelism of ``shiftkit ingest``."""

    max_pixels: int = 89_478_485  # above this (width x height from the header): decompression_bomb
    min_size: int = 8  # images with a side smaller than this are quarantined as too_small
    near_dup_radius: int = 2  # phash Hamming distance at or below which images are near copies
    # (phash distances come in even steps; at 4 the example chains 2,534 digits of several
    # classes into one group through near neighbours, at 2 the largest group is 547 ones)
    background: int = 255  # grey level that transparent pixels are composited on
    workers: int = 0  # processes; 0 means all cores

    def __post_init__(self) -> None:
        check_positive("ingest.max_pixels", self.max_pixels)
        check_positive("ingest.min_size", self.min_size)
        if not 0 <= self.near_dup_radius <= 32:
            raise ConfigError(
                f"The 'ingest.near_dup_radius' parameter must be in [0, 32]. Got {self.near_dup_radius!r} instead."
            )
        if not 0 <= self.background <= 255:
            raise ConfigError(f"The 'ingest.background' parameter must be in [0, 255]. Got {self.background!r}.")
        check_positive("ingest.workers", self.workers, allow_zero=True)


# --- split -------------------------------------------------------------------------------------


def check_size(where: str, value: int | float) -> None:
    """A split size is a fraction in (0, 1) or an integer count >= 1.

    Raises:
        ConfigError: naming the parameter and the value.
    """
    is_fraction = isinstance(value, float) and 0 < value < 1
    is_count = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    if not (is_fraction or is_count):
        raise ConfigError(
            f"The {where!r} parameter must be a fraction in (0, 1) or a count >= 1. Got {value!r} instead."
        )


@section("split")
@frozen
class SplitParams:
    """How ``shiftkit split`` builds train / bridge / dev / test (design sections 1 and 2)."""

    strategy: Literal["target", "shuffle"] = "target"  # shuffle: the naive mix, for comparison only
    target_domain: str = "target"  # the domain dev and test come from
    seed: int = 0  # with the group, decides membership; changing it reshuffles everything
    dev: int | float = 0.25  # fraction of the target (shuffle: of all images) or a count
    test: int | float = 0.25  # as dev
    bridge: int | float = 0.05  # fraction of the training pool or a count; never trained on
    min_per_label: int = 3  # labels with fewer images where dev/test are drawn are pooled

    def __post_init__(self) -> None:
        check_choice("split.strategy", self.strategy, ("target", "shuffle"))
        if not self.target_domain:
            raise ConfigError("The 'split.target_domain' parameter must be a domain name. Got '' instead.")
        for name in ("dev", "test", "bridge"):
            check_size(f"split.{name}", getattr(self, name))
        if isinstance(self.dev, float) and isinstance(self.test, float) and self.dev + self.test >= 1:
            raise ConfigError(
                f"The 'split.dev' and 'split.test' fractions must sum to less than 1 so that some of "
                f"the target is left to train on. Got {self.dev} + {self.test} instead."
            )
        check_positive("split.min_per_label", self.min_per_label)

    def settings(self) -> dict:
        """What decides membership: when any of it changes, previous splits are not honoured."""
        return {k: getattr(self, k) for k in ("strategy", "target_domain", "seed", "dev", "test", "bridge", "min_per_label")}


# --- check -------------------------------------------------------------------------------------


@section("check")
@frozen
class CheckParams:
    """Thresholds of ``shiftkit check``, the gate for a new data drop."""

    max_corrupt: float = 0.01  # share of a drop's files that may be quarantined before it blocks
    class_share: float = 0.05  # a label whose share of its domain moves more than this: warning
    drift_ks: float = 0.2  # two-sample KS statistic above which a property drifts ...
    drift_effect: float = 0.5  # ... and |Cohen's d| above which it does (both must hold)
    drift_min_images: int = 20  # fewer images on either side: no drift test
    tiny_size: int = 16  # an image whose smaller side is below this is tiny (warning)
    allow_new_labels: bool = False  # a label the reference lacks is an error unless true

    def __post_init__(self) -> None:
        check_fraction("check.max_corrupt", self.max_corrupt, closed_low=True, closed_high=True)
        check_fraction("check.class_share", self.class_share, closed_high=True)
        check_fraction("check.drift_ks", self.drift_ks, closed_high=True)
        check_positive("check.drift_effect", self.drift_effect)
        check_positive("check.drift_min_images", self.drift_min_images)
        check_positive("check.tiny_size", self.tiny_size)


# --- synth -------------------------------------------------------------------------------------


@section("synth")
@frozen
class SynthParams:
    """Target-like synthesis: the recipe fit and the degraded copies of web images."""

    enabled: bool = True  # false: write an empty synth table so that later stages run unchanged
    seed: int = 0  # fit samples, per-image seeds and the choice of parents
    fraction: float = 1.0  # share of web train/bridge images that get degraded copies, in (0, 1]
    copies: int = 1  # degraded copies per chosen image
    web_domain: str = "web"  # manifest domain whose images are degraded
    target_domain: str = "target"  # manifest domain the recipe is fitted to (train split only)
    fit_web: int = 160  # web images sampled for the fit
    fit_target: int = 160  # target train images sampled for the fit
    max_rounds: int = 6  # beam-search rounds (each may add or replace one step)
    beam: int = 3  # recipes kept between rounds (each a different combination of steps)
    patience: int = 1  # rounds without gain the search tolerates before it stops
    refine: int = 6  # coordinate-search moves that nudge the chosen values after the beam search
    min_gain: float = 0.03  # smallest score drop that justifies a step
    feature_size: int = 8  # side of the grey thumbnail in the domain classifier's features
    widen: float = 0.15  # chosen values widen to +-this (relative) when that costs little
    high_order: bool = False  # also try Real-ESRGAN's randomised two-pass chain
    weighting: str = "density_ratio"  # share copies by p_target/p_web of the degraded parent; "none": evenly
    weight_clip: float = 10.0  # cap of a parent's weight, as a multiple of the median weight
    weight_sample: int = 2000  # web and target train images that fit and check the weighting
    recipe: str = ""  # path of a saved recipe.json to reuse (skips the fit); empty: fit
    preview: int = 0  # images in the contact sheet (0: none)
    workers: int = 0  # processes; 0 means all cores

    def __post_init__(self) -> None:
        check_fraction("synth.fraction", self.fraction, closed_high=True)
        check_positive("synth.copies", self.copies)
        if self.fit_web < 6 or self.fit_target < 6:
            raise ConfigError(
                f"The 'synth.fit_web' and 'synth.fit_target' parameters must be >= 6. "
                f"Got {self.fit_web} and {self.fit_target} instead."
            )
        check_positive("synth.max_rounds", self.max_rounds, allow_zero=True)
        check_positive("synth.beam", self.beam)
        check_positive("synth.patience", self.patience, allow_zero=True)
        check_positive("synth.refine", self.refine, allow_zero=True)
        check_positive("synth.min_gain", self.min_gain, allow_zero=True)
        if not 2 <= self.feature_size <= 64:
            raise ConfigError(f"The 'synth.feature_size' parameter must be in [2, 64]. Got {self.feature_size!r} instead.")
        check_positive("synth.widen", self.widen, allow_zero=True)
        check_choice("synth.weighting", self.weighting, ("density_ratio", "none"))
        if not self.weight_clip >= 1.0:
            raise ConfigError(f"The 'synth.weight_clip' parameter must be >= 1. Got {self.weight_clip!r} instead.")
        if self.weight_sample < 12:
            raise ConfigError(f"The 'synth.weight_sample' parameter must be >= 12. Got {self.weight_sample!r} instead.")
        check_positive("synth.preview", self.preview, allow_zero=True)
        check_positive("synth.workers", self.workers, allow_zero=True)


# --- shift -------------------------------------------------------------------------------------


@section("shift")
@frozen
class ShiftParams:
    """``shiftkit shift``: how far apart two image sets are."""

    max_images: int = 500  # images sampled per set (0: all)
    folds: int = 5  # cross-validation folds of the domain classifier
    permutations: int = 500  # permutations of the MMD test
    alpha: float = 0.05  # level at which the MMD test is reported as rejecting
    feature_size: int = 16  # side of the grey thumbnail in the cheap features
    model: str = ""  # a timm model name: its pooled output replaces the cheap features
    model_size: int = 64  # input side for the timm model
    seed: int = 0
    workers: int = 0  # processes; 0 means all cores

    def __post_init__(self) -> None:
        check_positive("shift.max_images", self.max_images, allow_zero=True)
        if self.folds < 2:
            raise ConfigError(f"The 'shift.folds' parameter must be an integer >= 2. Got {self.folds!r} instead.")
        check_positive("shift.permutations", self.permutations, allow_zero=True)
        check_fraction("shift.alpha", self.alpha)
        if not 2 <= self.feature_size <= 64:
            raise ConfigError(f"The 'shift.feature_size' parameter must be in [2, 64]. Got {self.feature_size!r} instead.")
        check_positive("shift.model_size", self.model_size)
        check_positive("shift.workers", self.workers, allow_zero=True)


# --- train -------------------------------------------------------------------------------------


@section("train")
@frozen
class TrainParams:
    """Transfer learning with a timm CNN (``shiftkit train``): model, phases, data pipeline, device."""

    model: str = "resnet10t"  # any name in timm.list_models()
    pretrained: Union[bool, str] = False  # true: timm hub weights; a checkpoint path; false: from scratch
    img_size: int = 32  # square input size in pixels
    channels: int = 3  # 1 (grey) or 3 (RGB)
    batch_size: int = 64  # per process
    head_epochs: int = 1  # phase (a): frozen backbone, new head (skipped when pretrained is false)
    finetune_epochs: int = 4  # phase (b): unfrozen layers at a low learning rate
    head_lr: float = 1e-3
    finetune_lr: float = 1e-3  # with pretrained weights, use a lower one (e.g. 1e-4)
    unfreeze_stages: int = 0  # phase (b): 0 unfreezes everything, K the last K stages (feature_info)
    layer_decay: float = 1.0  # layer-wise learning-rate decay in phase (b); 1.0 switches it off
    weight_decay: float = 0.05
    label_smoothing: float = 0.0
    augment: bool = True
    translate: float = 0.08  # augmentation: shift as a fraction of the side
    scale: float = 0.1  # augmentation: zoom in/out by up to this fraction
    rotate: float = 10.0  # augmentation: rotation in degrees, up to
    hflip: bool = False  # augmentation: horizontal flip (wrong for digits and text)
    seed: int = 0
    device: str = "auto"  # auto (CUDA when present, else CPU), cpu, cuda, cuda:N
    amp: bool = True  # mixed precision on CUDA (bf16 where supported, else fp16 + grad scaler)
    channels_last: bool = True  # memory format on CUDA
    workers: int = 2  # data-loader worker processes (0 loads in the training process)
    threads: int = 0  # torch CPU threads of the training process; 0 keeps torch's default
    cache: bool = True  # keep decoded, resized images in memory when they fit in cache_mb
    cache_mb: int = 2048
    eval_batches: int = 0  # dev batches evaluated after each epoch for the metrics; 0 = all

    def __post_init__(self) -> None:
        if not self.model.strip():
            raise ConfigError("The 'train.model' parameter must be a timm model name. Got '' instead.")
        check_choice("train.channels", self.channels, (1, 3))
        if self.img_size < 8:
            raise ConfigError(f"The 'train.img_size' parameter must be >= 8. Got {self.img_size!r} instead.")
        check_positive("train.batch_size", self.batch_size)
        check_positive("train.head_epochs", self.head_epochs, allow_zero=True)
        check_positive("train.finetune_epochs", self.finetune_epochs, allow_zero=True)
        check_positive("train.head_lr", self.head_lr)
        check_positive("train.finetune_lr", self.finetune_lr)
        check_positive("train.unfreeze_stages", self.unfreeze_stages, allow_zero=True)
        check_fraction("train.layer_decay", self.layer_decay, closed_high=True)
        check_positive("train.weight_decay", self.weight_decay, allow_zero=True)
        check_fraction("train.label_smoothing", self.label_smoothing, closed_low=True)
        check_fraction("train.translate", self.translate, closed_low=True)
        check_fraction("train.scale", self.scale, closed_low=True)
        if not 0 <= self.rotate <= 180:
            raise ConfigError(f"The 'train.rotate' parameter must be in [0, 180] degrees. Got {self.rotate!r} instead.")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(
                f"The 'train.device' parameter must be 'auto', 'cpu', 'cuda' or 'cuda:N'. Got {self.device!r} instead."
            )
        check_positive("train.workers", self.workers, allow_zero=True)
        check_positive("train.threads", self.threads, allow_zero=True)
        check_positive("train.cache_mb", self.cache_mb, allow_zero=True)
        check_positive("train.eval_batches", self.eval_batches, allow_zero=True)
        if self.head_epochs + self.finetune_epochs == 0:
            raise ConfigError("The 'train.head_epochs' and 'train.finetune_epochs' parameters are both 0; nothing to train.")



# --- evaluate ----------------------------------------------------------------------------------


@section("evaluate")
@frozen
class EvaluateParams:
    """Predictions over the splits (``shiftkit evaluate``)."""

    train_sample: int = 5000  # at most this many train images (and as many synth children), seeded
    batch_size: int = 256
    seed: int = 0
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    workers: int = 2  # data-loader worker processes

    def __post_init__(self) -> None:
        check_positive("evaluate.train_sample", self.train_sample)
        check_positive("evaluate.batch_size", self.batch_size)
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(
                f"The 'evaluate.device' parameter must be 'auto', 'cpu', 'cuda' or 'cuda:N'. Got {self.device!r} instead."
            )
        check_positive("evaluate.workers", self.workers, allow_zero=True)



# --- report ------------------------------------------------------------------------------------


@section("report")
@frozen
class ReportParams:
    """The error decomposition, error analysis and rendering of ``shiftkit report``."""

    human_error: float = 0.0  # human-level (Bayes proxy) error in [0, 1): a fixed input, no interval
    replicates: int = 1000  # bootstrap replicates per split (>= 100)
    level: float = 0.95  # confidence level of every interval
    seed: int = 0  # seed of the bootstrap streams
    include_synth: bool = True  # count synthesised children (domain "synth") in train / bridge errors
    gallery: int = 16  # most confidently wrong dev images shown (0: no gallery)
    buckets: int = 4  # quantile buckets per image property in the error analysis
    properties: tuple[str, ...] = ("blur", "effective_res", "brightness")  # manifest columns to bucket
    min_count: int = 5  # slices with fewer dev images are listed but never named in recommendations

    def __post_init__(self) -> None:
        check_fraction("report.human_error", self.human_error, closed_low=True)
        if self.replicates < 100:
            raise ConfigError(f"The 'report.replicates' parameter must be an integer >= 100. Got {self.replicates!r} instead.")
        check_fraction("report.level", self.level)
        check_positive("report.gallery", self.gallery, allow_zero=True)
        if not 1 <= self.buckets <= 20:
            raise ConfigError(f"The 'report.buckets' parameter must be in [1, 20]. Got {self.buckets!r} instead.")
        allowed = ("blur", "brightness", "contrast", "effective_res", "noise", "extent", "width", "height")
        for prop in self.properties:
            check_choice("report.properties", prop, allowed)
        check_positive("report.min_count", self.min_count)
