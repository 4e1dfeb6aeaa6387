"""Transfer learning with a timm CNN: two phases, AMP, DDP, atomic checkpoints, exact resume.

Phase (a) trains the new head with the backbone frozen (batch-norm statistics included, so the
backbone stays bit-identical); phase (b) unfreezes everything or the last K stages and
fine-tunes at a low learning rate. Without pretrained weights there is nothing to protect and
phase (a) is skipped.

After every epoch the model (safetensors + json metadata) and a resume point (``state.pt``:
weights, optimizer, scheduler, scaler, RNG states) are written atomically. The data order and
augmentation are functions of (seed, epoch), so ``resume=True`` after an interruption redoes the
interrupted epoch exactly and ends with the same weights as an uninterrupted run.

Batches come from one of two paths (:func:`build_data`). When the train and dev images fit
``train.cache_mb`` they are decoded once into a uint8 cache and every batch is assembled on the
device (:class:`shiftkit.training.DeviceBatches`: index, copy as uint8, one batched random affine,
normalise); otherwise the worker-process loader decodes and augments each image on the CPU every
epoch (:class:`shiftkit.training.LoaderBatches`), and one line says so. Both draw the same
augmentation distribution (:class:`shiftkit.training.loader.Augment`), not the same draws.

Repeatability: on the CPU a run is bit-exact (resume included). On CUDA the batch path is too
(indexing, ``affine_grid`` and ``grid_sample`` forward are deterministic, and the augmentation's
random draws are made on the CPU); what varies between runs are the model's own kernels:
cuDNN's convolution backward and other atomic-add reductions (``torch.use_deterministic_algorithms``
lists them). ``grid_sample``'s backward is nondeterministic too, but the augmentation never
needs gradients.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from torch import nn

import shiftkit
from shiftkit.core.console import console, make_progress, rate_text
from shiftkit.core.errors import ConfigError, DataError
from shiftkit.training import loader as data
from shiftkit.training import models
from shiftkit.training.batches import DeviceBatches, LoaderBatches, resolve_device
from shiftkit.training.batches import Feed as InputFeed
from shiftkit.training.checkpoint import EpochStats, Optim, checkpoint, load_resume_point, open_live, set_rng_state
from shiftkit.training.distributed import _all_sum, _barrier, _Dist, _init_distributed
from shiftkit.training.params import TrainParams
from shiftkit.training.pixels import PixelStore

# settings that change how fast a run goes, never what it computes: left out of the params hash
_RUNTIME_KEYS = ("workers", "threads", "cache", "cache_mb", "eval_batches")


@dataclass(frozen=True)
class TrainResult:
    model_dir: Path
    epochs: int
    dev_accuracy: float
    seconds: float
    images_per_s: float
    device: str
    world_size: int


def params_hash(params: TrainParams) -> str:
    """sha256 of the parameters that determine the weights."""
    d = {k: v for k, v in dataclasses.asdict(params).items() if k not in _RUNTIME_KEYS}
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


def phase_plan(params: TrainParams) -> list[str]:
    """The phase of each epoch: 'head' epochs (only with pretrained weights), then 'finetune'."""
    head = params.head_epochs if params.pretrained is not False else 0
    plan = ["head"] * head + ["finetune"] * params.finetune_epochs
    if not plan:
        raise ConfigError(
            "The 'train.finetune_epochs' parameter is 0 and 'train.pretrained' is false (which skips the head "
            "phase): nothing to train. Set finetune_epochs >= 1."
        )
    return plan


# ---------------------------------------------------------------------------------------------
# the loop


def _optimizer(model: nn.Module, phase: str, params: TrainParams, steps: int):
    if phase == "head":
        models.freeze_backbone(model)
        groups = models.param_groups(model, params.head_lr, params.weight_decay)
    else:
        models.unfreeze(model, params.unfreeze_stages)
        groups = models.param_groups(model, params.finetune_lr, params.weight_decay, params.layer_decay)
    opt = torch.optim.AdamW(groups, lr=params.head_lr if phase == "head" else params.finetune_lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
    return opt, sched


def _set_mode(model: nn.Module, phase: str) -> None:
    """Train mode, but in the head phase the frozen backbone's batch-norm statistics stay put."""
    if phase == "head":
        model.eval()
        head = model.get_classifier()
        if isinstance(head, nn.Module):
            head.train()
    else:
        model.train()


@dataclass
class Feed:
    """How a batch reaches the model: device, normalisation and memory format (``inputs``), the
    autocast precision and this process's place in a distributed run."""

    inputs: InputFeed
    amp_dtype: torch.dtype | None
    dist: _Dist

    @property
    def device(self) -> torch.device:
        return self.inputs.device


@dataclass
class TrainData:
    """The train and dev images of a run as batch sources: iterables of (model input, target) on
    the device, with ``set_epoch`` and ``len`` (:class:`DeviceBatches` or the worker-process
    fallback :class:`LoaderBatches`)."""

    labels: list[str]
    batches: DeviceBatches | LoaderBatches
    dev_batches: DeviceBatches | LoaderBatches
    n_train: int
    dev_targets: np.ndarray
    # 'device' or 'loader': the two paths draw the same distribution but not the same augmentations,
    # so the path is recorded in model.json and a resume point is only continued on the same path
    path: str


def select_items(tables: data.Tables) -> tuple[list[str], pl.DataFrame, pl.DataFrame]:
    """The label set and the rows of the train split (with its synthesised children) and the dev split.

    Raises:
        DataError: when the train or dev split is empty or labels are missing.
    """
    man, spl, syn = tables.manifest, tables.splits, tables.synth
    manifest, splits, synth = tables.manifest_path, tables.splits_path, tables.synth_path
    labels = data.labels_of(man)
    unmatched = data.unmatched_splits(man, spl, manifest, splits)
    if unmatched:
        console.print(
            f"[yellow]train: {unmatched:,} of {spl.height:,} rows of {splits} name no image of {manifest}; "
            f"they are left out.[/]"
        )
    train_items = data.items(man, manifest, spl, ["train"], syn, synth)
    dev_items = data.items(man, manifest, spl, ["dev"])
    for name, frame in (("train", train_items), ("dev", dev_items)):
        if frame.height == 0:
            raise DataError(f"The {name!r} split of {splits} holds no images; training needs train and dev images.")
    return labels, train_items, dev_items


def _cached(rows: pl.DataFrame, params: TrainParams, pinned: bool,
            store: PixelStore | list[PixelStore] | None) -> torch.Tensor:
    """The decoded uint8 cache of ``rows``: copied from the shared stores where they have them (the
    manifest's images, the synthesised copies), else decoded."""
    size, ch, workers = params.img_size, params.channels, params.workers or 1
    cache = data.empty_cache(rows.height, size, ch, pinned=pinned)
    out, paths = cache.numpy(), rows["abspath"].to_list()
    stores = [store] if isinstance(store, PixelStore) else list(store or [])
    if not stores:
        data.build_cache(paths, size, ch, workers, out=out)
        return cache
    found, ids = np.zeros(rows.height, dtype=bool), rows["image_id"].to_list()
    for s in stores:  # each store copies the rows it holds; a later one fills what an earlier lacked
        left = np.flatnonzero(~found)
        sub = np.empty((len(left), size, size, ch), dtype=np.uint8)
        got = s.fill([ids[i] for i in left], sub)
        out[left[got]], found[left[got]] = sub[got], True
    todo = np.flatnonzero(~found)
    if len(todo):
        out[todo] = data.build_cache([paths[i] for i in todo], size, ch, workers)
    return cache


def open_store(pixels, params: TrainParams, main: bool) -> PixelStore | list[PixelStore] | None:
    """The shared decoded-image store when it was decoded at this size and channels (else a note, None);
    a list of stores for a list of folders (the manifest's images, the synthesised copies)."""
    if pixels is None or not params.cache:
        return None
    if isinstance(pixels, (list, tuple)):
        return [s for s in (open_store(p, params, main) for p in pixels) if s is not None]
    store = PixelStore.open(pixels)
    if not store.matches(params.img_size, params.channels):
        if main:
            console.print(f"[yellow]train: {pixels} holds {store.size} px, {store.channels}-channel images, not "
                          f"{params.img_size} px, {params.channels}-channel; decoding instead.[/]")
        return None
    return store


def _why_no_cache(params: TrainParams, n: int) -> str | None:
    """Why the images are not decoded into the cache (None when they are)."""
    if not params.cache:
        return "train.cache is false"
    if data.cache_fits(n, params.img_size, params.channels, params.cache_mb):
        return None
    need = data.cache_bytes(n, params.img_size, params.channels) / 2**20
    return f"{n:,} images at {params.img_size} px need {need:,.0f} MB, more than train.cache_mb={params.cache_mb}"


def build_data(
    labels: list[str], train_items: pl.DataFrame, dev_items: pl.DataFrame, params: TrainParams, feed: Feed,
    *, store: PixelStore | list[PixelStore] | None = None,
) -> TrainData:
    """Batch sources of the train and dev rows: decoded once into a uint8 cache (or copied from the
    shared ``store``) and assembled on the device when they fit ``train.cache_mb``, else today's
    worker-process loader (with one line saying so)."""
    size, ch, bs = params.img_size, params.channels, params.batch_size
    augment = data.Augment(params.translate, params.scale, params.rotate, params.hflip) if params.augment else None
    tr_paths, dv_paths = train_items["abspath"].to_list(), dev_items["abspath"].to_list()
    tr_y, dv_y = data.targets(train_items, labels), data.targets(dev_items, labels)
    cuda, dist_info = feed.device.type == "cuda", feed.dist
    dev_feed = dataclasses.replace(feed.inputs, world_size=1, rank=0)  # rank 0 evaluates the whole dev split
    why = _why_no_cache(params, len(tr_paths) + len(dv_paths))
    # a last batch of one image cannot train batch norm: drop it (a curve's small budgets meet it)
    drop_last = dist_info.world_size > 1 or (len(tr_paths) > 1 and len(tr_paths) % bs == 1)
    if why is None:
        train_b = DeviceBatches(
            _cached(train_items, params, cuda, store),
            tr_y,
            batch_size=bs,
            feed=feed.inputs,
            augment=augment,
            shuffle=True,
            seed=params.seed,
            drop_last=drop_last,
        )
        dev_cache = _cached(dev_items, params, cuda, store)
        dev_b = DeviceBatches(dev_cache, dv_y, batch_size=max(bs, 256), feed=dev_feed)
        return TrainData(labels, train_b, dev_b, len(tr_paths), dv_y, "device")
    if dist_info.main:
        console.print(
            f"[yellow]train: {why}: images are decoded and augmented per image in the loader's worker processes "
            f"every epoch (several times slower than the cache; benchmarks/train.py measures both).[/]"
        )
    tr_ds = data.ImageDataset(tr_paths, tr_y, size=size, channels=ch, augment=augment, seed=params.seed)
    dv_ds = data.ImageDataset(dv_paths, dv_y, size=size, channels=ch)
    loader = data.make_loader(
        tr_ds,
        batch_size=bs,
        shuffle=True,
        seed=params.seed,
        workers=params.workers,
        pin_memory=cuda,
        world_size=dist_info.world_size,
        rank=dist_info.rank,
        drop_last=drop_last,
    )
    dev_loader = data.make_loader(dv_ds, batch_size=max(bs, 256), shuffle=False, workers=0, pin_memory=cuda)
    src = functools.partial(
        LoaderBatches,
        device=feed.device,
        mean=feed.inputs.mean,
        std=feed.inputs.std,
        channels_last=feed.inputs.channels_last,
    )
    return TrainData(labels, src(loader), src(dev_loader), len(tr_paths), dv_y, "loader")


def _feed(params: TrainParams, dist_info: _Dist, mean_t: tuple[float, ...], std_t: tuple[float, ...]) -> Feed:
    device = resolve_device(params.device, dist_info.local_rank)
    cuda = device.type == "cuda"
    amp_dtype = None
    if cuda and params.amp:
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    inputs = InputFeed.of(device, mean_t, std_t, cuda and params.channels_last, dist_info.world_size, dist_info.rank)
    return Feed(inputs, amp_dtype, dist_info)


def _meta(params: TrainParams, labels: list[str], mean_t, std_t, plan: list[str]) -> dict[str, Any]:
    return {
        "model": params.model,
        "labels": labels,
        "img_size": params.img_size,
        "channels": params.channels,
        "mean": list(mean_t),
        "std": list(std_t),
        "pretrained": params.pretrained if isinstance(params.pretrained, bool) else str(params.pretrained),
        "params_hash": params_hash(params),
        "shiftkit_version": shiftkit.__version__,
        "phases": plan,
    }


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optim: Optim,
    criterion: nn.Module,
    feed: Feed,
    *,
    on_step: Callable[[int, int, float], None] | None = None,
) -> EpochStats:
    """One pass over ``batches`` (model inputs and targets on the device); ``on_step(batch, n, seconds)``
    after each optimizer step."""
    stats = EpochStats()
    # sums stay on the device until the epoch ends: reading them each step would make the host
    # wait for the GPU and stop it preparing the next batch
    loss_sum = torch.zeros((), dtype=torch.float64, device=feed.device)
    correct = torch.zeros((), dtype=torch.int64, device=feed.device)
    t0 = time.perf_counter()
    for b, (x, y) in enumerate(batches):
        with torch.autocast(
            feed.device.type, dtype=feed.amp_dtype or torch.float32, enabled=feed.amp_dtype is not None
        ):
            logits = model(x)
            loss = criterion(logits, y)
        optim.opt.zero_grad(set_to_none=True)
        optim.scaler.scale(loss).backward()
        optim.scaler.step(optim.opt)
        optim.scaler.update()
        optim.sched.step()
        n = y.shape[0]
        loss_sum += loss.detach().double() * n
        correct += (logits.detach().argmax(1) == y).sum()
        stats.count += n
        if on_step is not None:
            on_step(b, n, time.perf_counter() - t0)
    stats.loss_sum, stats.correct = float(loss_sum), float(correct)
    stats.seconds = time.perf_counter() - t0
    return stats


def validate(model: nn.Module, tdata: TrainData, feed: Feed, max_batches: int = 0) -> tuple[float, float]:
    """(loss, accuracy) on the dev split (its first ``max_batches`` batches when > 0)."""
    probs = models.predict(model, tdata.dev_batches, feed.amp_dtype, max_batches=max_batches)
    dev_y = torch.from_numpy(tdata.dev_targets[: probs.shape[0]])
    dev_loss = float(nn.functional.nll_loss(torch.log(probs.clamp_min(1e-12)), dev_y))
    dev_acc = float((probs.argmax(1) == dev_y).float().mean())
    return dev_loss, dev_acc


def _log_live(live, stats: EpochStats, dev_loss: float, dev_acc: float, optim: Optim) -> None:
    if live is None:
        return
    live.log_metric("train/loss", stats.loss_sum / max(stats.count, 1))
    live.log_metric("train/accuracy", stats.correct / max(stats.count, 1))
    live.log_metric("dev/loss", dev_loss)
    live.log_metric("dev/accuracy", dev_acc)
    live.log_metric("lr", float(optim.opt.param_groups[-1]["lr"]))
    live.log_metric("images_per_s", stats.count / max(stats.seconds, 1e-9), plot=False)
    live.next_step()


def _begin_phase(
    model: nn.Module,
    phase: str,
    params: TrainParams,
    steps: int,
    feed: Feed,
    scaler: torch.amp.GradScaler,
    resume_state,
) -> tuple[Optim, nn.Module]:
    """The phase's optimizer (restored from ``resume_state`` when it was saved in this phase) and
    the model to call (wrapped in DDP under torchrun)."""
    opt, sched = _optimizer(model, phase, params, steps)
    if resume_state is not None and resume_state.get("phase") == phase:
        opt.load_state_dict(resume_state["optimizer"])
        sched.load_state_dict(resume_state["scheduler"])
        scaler.load_state_dict(resume_state["scaler"])
    if feed.dist.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        return Optim(opt, sched, scaler), DDP(
            model, device_ids=[feed.device.index] if feed.device.type == "cuda" else None
        )
    return Optim(opt, sched, scaler), model


def _seed_all(params: TrainParams) -> None:
    if params.threads:
        torch.set_num_threads(params.threads)
    torch.manual_seed(params.seed)
    np.random.seed(params.seed)
    random.seed(params.seed)


@dataclass
class _Run:
    """What every epoch of one run shares."""

    model: nn.Module
    tdata: TrainData
    feed: Feed
    params: TrainParams
    plan: list[str]
    out: Path
    meta: dict[str, Any]
    epoch_fn: Callable[..., Any] = train_one_epoch  # an arm's adapted epoch (training/adapt.py)
    source_bn: dict[str, torch.Tensor] | None = None  # an arm's source batch-norm statistics (training/bnstats.py)


def _step_hook(
    progress, task, epoch: int, on_batch: Callable[[int, int], None] | None
) -> Callable[[int, int, float], None]:
    """After each step: advance the epoch's bar (with the rate so far), then call ``on_batch(epoch, batch)``."""
    done = 0

    def on_step(batch: int, n: int, elapsed: float) -> None:
        nonlocal done
        done += n
        progress.update(task, advance=n, rate=rate_text(done, elapsed))
        if on_batch is not None:
            on_batch(epoch, batch)

    return on_step


def _run_epochs(run: _Run, state: dict[str, Any] | None, live, on_batch) -> tuple[int, float, float]:
    """The epochs from the resume point (or 0) to the end; returns (images seen, seconds, dev accuracy)."""
    plan, feed, model = run.plan, run.feed, run.model
    start_epoch = int(state["epoch"]) if state is not None else 0
    dev_acc = float(state["dev_accuracy"]) if state is not None else float("nan")
    criterion = nn.CrossEntropyLoss(label_smoothing=run.params.label_smoothing)
    steps_per_epoch = len(run.tdata.batches)
    seen, train_seconds, phase_now, optim, ddp_model = 0, 0.0, None, None, model
    # one gradient scaler for the whole run (its scale carries across phases)
    scaler = torch.amp.GradScaler("cuda", enabled=feed.amp_dtype is torch.float16)
    progress = make_progress()
    with progress:
        for epoch in range(start_epoch, len(plan)):
            phase = plan[epoch]
            if phase != phase_now:
                restore = state if state is not None and epoch == start_epoch else None
                steps = plan.count(phase) * steps_per_epoch
                optim, ddp_model = _begin_phase(model, phase, run.params, steps, feed, scaler, restore)
                phase_now = phase
            if state is not None and epoch == start_epoch:
                set_rng_state(state["rng"])
            run.tdata.batches.set_epoch(epoch)
            _set_mode(model, phase)
            title = f"epoch {epoch + 1}/{len(plan)} {phase}"
            task = progress.add_task(title, total=run.tdata.n_train // feed.dist.world_size, rate="")

            on_step = _step_hook(progress, task, epoch, on_batch)
            stats = run.epoch_fn(ddp_model, run.tdata.batches, optim, criterion, feed, on_step=on_step)
            train_seconds += stats.seconds
            stats.loss_sum, stats.correct, stats.count = _all_sum(
                [stats.loss_sum, stats.correct, stats.count], feed.dist, feed.device
            )
            seen += int(stats.count)
            if feed.dist.main:
                dev_loss, dev_acc = validate(model, run.tdata, feed, run.params.eval_batches)
                checkpoint(run.out, model, run.meta, epoch, phase, optim, dev_acc, source=run.source_bn)
                _log_live(live, stats, dev_loss, dev_acc, optim)
                progress.update(
                    task, description=f"{title} loss {stats.loss_sum / max(stats.count, 1):.3f} dev acc {dev_acc:.3f}"
                )
            _barrier(feed.dist)
    return seen, train_seconds, dev_acc


def _resume_source_bn(run: _Run, state: dict[str, Any]) -> None:
    """An arm's source batch-norm statistics as the resume point saved them.

    Raises:
        ConfigError: on a resume point written before they were kept (it cannot continue exactly).
    """
    from shiftkit.training.checkpoint import STATE_NAME

    if run.source_bn is None:
        return
    saved = state.get("source_bn")
    if saved is None or set(saved) != set(run.source_bn):
        raise ConfigError(f"Resume point {run.out / STATE_NAME} holds no source batch-norm statistics (written "
                          f"before the arms kept them); drop --resume to start afresh.")
    for k, t in run.source_bn.items():
        t.copy_(saved[k])


def train(
    manifest: str | os.PathLike[str],
    splits: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    params: TrainParams,
    *,
    synth: str | os.PathLike[str] | None = None,
    live_dir: str | os.PathLike[str] | None = "dvclive",
    resume: bool = False,
    on_batch: Callable[[int, int], None] | None = None,
    pixels: str | os.PathLike[str] | list[str | os.PathLike[str]] | None = None,
    tables: data.Tables | None = None,
    adapt: Any = None,
) -> TrainResult:
    """Train ``params.model`` on the train split (and its synthesised children); track dev.

    ``tables``: the manifest, splits and synth tables already read by the caller (the same files as
    the paths), so that a stage reads each table once; without it they are read here.

    ``pixels``: a decoded-image store (:mod:`shiftkit.training.pixels`) shared by several trainings, or a
    list of them (the manifest's images, the synthesised copies); their images are copied instead of
    decoded again (same pixels, same model).

    ``adapt``: an arm's :class:`shiftkit.training.adapt.AdaptSpec` (its loss replaces the plain one).

    ``on_batch(epoch, batch)`` is called after each optimizer step (progress hooks, tests that
    interrupt a run). Under ``torchrun`` every process trains its shard and rank 0 writes.

    Raises:
        DataError: when the train or dev split is empty or labels are missing.
        ModelError: on an unknown model or unusable pretrained weights.
        ConfigError: on a resume point written with other parameters.
    """
    t_start, out = time.perf_counter(), Path(out_dir)
    dist_info = _init_distributed(params.device)
    resolve_device(params.device, dist_info.local_rank)
    _seed_all(params)
    labels, train_items, dev_items = select_items(tables or data.read_tables(manifest, splits, synth))
    plan = phase_plan(params)
    model = models.create_model(params.model, len(labels), in_chans=params.channels, pretrained=params.pretrained)
    mean_t, std_t = models.data_config(model, params.channels)
    feed = _feed(params, dist_info, mean_t, std_t)
    model.to(feed.device)
    if feed.inputs.channels_last:
        model.to(memory_format=torch.channels_last)
    store = open_store(pixels, params, dist_info.main)
    tdata = build_data(labels, train_items, dev_items, params, feed, store=store)
    meta = {**_meta(params, labels, mean_t, std_t, plan), "batch_path": tdata.path}
    run = _Run(model, tdata, feed, params, plan, out, meta)
    if adapt is not None:
        from shiftkit.training.adapt import attach

        hook = attach(adapt, model, tdata, train_items, params, feed, lambda rows: _cached(
            rows, params, feed.device.type == "cuda", store), len(plan) * len(tdata.batches))
        run.epoch_fn, meta["adapt"] = hook.train_one_epoch, hook.meta()
        if hook.source_bn is not None:
            from shiftkit.training import bnstats

            run.source_bn, meta[bnstats.META_KEY] = hook.source_bn, bnstats.meta_entry(adapt.target_domain)
    state = load_resume_point(out, meta, resume, dist_info.main)
    start_epoch = int(state["epoch"]) if state is not None else 0
    if state is not None:
        model.load_state_dict(state["model"])
        _resume_source_bn(run, state)
    live = open_live(live_dir, resume and state is not None, start_epoch) if dist_info.main else None
    seen, train_seconds, dev_acc = _run_epochs(run, state, live, on_batch)
    if live is not None:
        live.end()
    return TrainResult(
        model_dir=out,
        epochs=len(plan),
        dev_accuracy=dev_acc,
        seconds=time.perf_counter() - t_start,
        images_per_s=seen / train_seconds if train_seconds else 0.0,
        device=str(feed.device),
        world_size=dist_info.world_size,
    )


def summary_line(result: TrainResult, params: TrainParams) -> str:
    """The one line that ``shiftkit train`` prints about a finished training (rank 0 only under torchrun)."""
    return (f"trained {params.model} for {result.epochs} epoch(s) on {result.device}: dev accuracy "
            f"{result.dev_accuracy:.3f}, {result.images_per_s:,.0f} img/s, {result.seconds:.0f} s "
            f"-> {result.model_dir}")
