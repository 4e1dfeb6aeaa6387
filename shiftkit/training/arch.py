"""The arithmetic of a CNN, per layer, checked against a real forward pass (``shiftkit models``).

For every convolution and pooling a model runs, the input and output size by the formula
``floor((n + 2p - d(f - 1) - 1) / s) + 1`` (the textbook ``(n + 2p - f) / s + 1`` with dilation ``d``;
``ceil`` for pools in ceil mode), the filters ``f x f x n_c`` and how many, the weights and biases, the
multiply-adds and the receptive field. One forward pass at the asked size is watched twice: forward
hooks name the module running, and a :class:`~torch.overrides.TorchFunctionMode` sees every tensor
operation, so the sizes the formula predicts, starting from the input alone, are carried through
residual additions, concatenations and TensorFlow-style "same" padding, and each layer's predicted
output is compared with the tensor the pass really produced. A disagreement is reported in the row
(``matches``) and counted, never hidden.

The same trace gives the smallest input the model accepts: the formula is replayed at every size
below the asked one (every feature map at least 1 x 1, the operands of every addition the same
size), and the answer is then checked by forward passes at that size and one pixel less.

Parameters are counted by formula too (a convolution ``f_h f_w n_c / groups`` weights per filter
plus one bias, a linear layer ``in x out + out``, a normalisation layer two per channel); the total is
compared with the number of parameters of the torch module (what timm reports), so a layer type the
formulas miss shows up as a difference. ``lenet5`` is a LeNet-5-like reference (LeCun et al. 1998:
5 x 5 convolutions, 2 x 2 average pooling, tanh) built here, next to any timm model name.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

GLOBAL = math.inf  # the receptive field after a global pooling: the whole image

# (name, parameters, multiply-adds at 224 px) of timm CNNs with 1,000 classes, by multiply-adds: the
# candidates the report names when it advises a bigger model. tests/test_models_arch.py checks each
# entry against a real forward pass; `shiftkit models NAME... --img-size 224` prints the same figures.
CANDIDATES: tuple[tuple[str, int, int], ...] = (
    ("mobilenetv3_small_100", 2_542_856, 56_510_400),
    ("mobilenetv3_large_100", 5_483_032, 216_589_760),
    ("efficientnet_b0", 5_288_548, 385_814_752),
    ("efficientnet_b2", 9_109_994, 658_963_440),
    ("resnet10t", 5_435_488, 1_097_259_008),
    ("resnet14t", 10_081_632, 1_676_822_528),
    ("resnet18", 11_689_512, 1_814_073_344),
    ("resnet26", 15_995_176, 2_342_256_640),
    ("densenet121", 7_978_856, 2_834_161_664),
    ("resnet34", 21_797_672, 3_663_761_408),
    ("resnet50", 25_557_032, 4_089_184_256),
    ("resnet101", 44_549_160, 7_801_405_440),
)


def bigger_models(current: str | None, img_size: int = 224, count: int = 3) -> list[tuple[str, int, float]]:
    """The next ``count`` candidates after ``current`` by multiply-adds (the smallest ones when
    ``current`` is not in the list): (name, parameters, multiply-adds scaled to ``img_size``)."""
    scale = (img_size / 224) ** 2
    names = [c[0] for c in CANDIDATES]
    start = names.index(current) + 1 if current in names else 0
    return [(n, p, m * scale) for n, p, m in CANDIDATES[start : start + count]]


# ---------------------------------------------------------------------------------------------
# the reference model


def lenet5(img_size: int = 32, in_chans: int = 1, num_classes: int = 10):
    """A LeNet-5-like network: C1 5x5x6, S2 2x2 average, C3 5x5x16, S4 2x2 average, C5 5x5x120, F6 84,
    output; tanh between. At 32 px, one channel and 10 classes it has 61,706 parameters. The first
    linear layer's width follows the C5 map at ``img_size``.

    Raises:
        ConfigError: when ``img_size`` is under 32 (the C5 map would be empty).
    """
    from torch import nn

    from shiftkit.core.errors import ConfigError

    side = ((img_size - 4) // 2 - 4) // 2 - 4
    if side < 1:
        raise ConfigError(f"lenet5 needs an input of at least 32 px (the C5 map would be {side} x {side}). "
                          f"Got --img-size {img_size} instead.")
    net = nn.Sequential(
        nn.Conv2d(in_chans, 6, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(16, 120, 5), nn.Tanh(), nn.Flatten(),
        nn.Linear(120 * side * side, 84), nn.Tanh(), nn.Linear(84, num_classes),
    )
    return net


REFERENCE = {"lenet5": lenet5}


def build(name: str, img_size: int, in_chans: int = 3, num_classes: int = 1000):
    """The model ``name`` (``lenet5`` or a timm name, random weights), in eval mode.

    Raises:
        ModelError: on a name that is neither; ConfigError: on a size lenet5 cannot take.
    """
    from shiftkit.core.errors import ModelError

    if name in REFERENCE:
        return REFERENCE[name](img_size, in_chans, num_classes).eval()
    from shiftkit.training import models

    try:
        models.check_model_name(name)
    except ModelError as exc:
        hint = str(exc).split("instead.", 1)[-1]
        raise ModelError(f"shiftkit models: {name!r} is neither a timm model name nor one of "
                         f"{', '.join(REFERENCE)}.{hint}") from exc
    return models.create_model(name, num_classes, in_chans=in_chans, pretrained=False).eval()


# ---------------------------------------------------------------------------------------------
# the trace


@dataclass
class Layer:
    """One convolution or pooling as it ran. Sizes are (height, width); ``*_formula`` come from the
    input size alone through the formula, ``*_measured`` from the forward pass."""

    name: str
    op: str  # conv, maxpool, avgpool
    in_channels: int
    out_channels: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]  # top, bottom, left, right
    dilation: tuple[int, int]
    groups: int
    in_formula: tuple[int, int] | None
    in_measured: tuple[int, int]
    out_formula: tuple[int, int] | None
    out_measured: tuple[int, int]
    weights: int
    biases: int
    macs: int
    receptive_field: float
    jump: float

    @property
    def matches(self) -> bool:
        return self.in_formula == self.in_measured and self.out_formula == self.out_measured


def out_size(n: int, f: int, s: int, pad: int, d: int = 1, ceil: bool = False) -> int:
    """Output side of a convolution or pooling: ``floor((n + pad - d(f - 1) - 1) / s) + 1`` with ``pad``
    the padding of both ends together (``2p``); in ceil mode, rounded up, but a window must start inside
    the input or its left padding (PyTorch's rule)."""
    span = n + pad - d * (f - 1) - 1
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= n + pad // 2:
        out -= 1
    return max(out, 0)


@dataclass
class _T:
    idx: int
    size: tuple[int, int] | None  # by the formula; None where no formula predicts it
    rf: float = 1.0
    jump: float = 1.0
    pad: tuple[int, int, int, int] = (0, 0, 0, 0)  # a pending F.pad, folded into the next conv or pool
    pre: tuple[int, int] | None = None  # the size before that pad


def _pair(v, n: int = 2) -> tuple[int, ...]:
    if isinstance(v, int):
        return (v,) * n
    v = tuple(int(x) for x in v)
    return v * n if len(v) == 1 else v


_CONV_ARGS = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
_MAX_ARGS = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode")
_AVG_ARGS = ("input", "kernel_size", "stride", "padding", "ceil_mode")


def _bind(names: tuple[str, ...], args, kwargs) -> dict[str, Any]:
    out = dict(zip(names, args, strict=False))
    out.update({k: v for k, v in kwargs.items() if k in names})
    return out


def _tensors(x) -> list:
    import torch

    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, (list, tuple)):
        return [t for v in x for t in _tensors(v)]
    return []


def _window(op: str, a: dict[str, Any], spatial: tuple[int, int]):
    """(kernel, stride, padding (t, b, l, r), dilation, ceil) of a conv or pool call."""
    if op == "conv":
        k = tuple(a["weight"].shape[-2:])
        s, d = _pair(a.get("stride", 1)), _pair(a.get("dilation", 1))
        p = a.get("padding", 0)
        if isinstance(p, str):  # 'valid' or 'same' (stride 1 only)
            tot = [0, 0] if p == "valid" else [d[i] * (k[i] - 1) for i in range(2)]
            return k, s, (tot[0] // 2, tot[0] - tot[0] // 2, tot[1] // 2, tot[1] - tot[1] // 2), d, False
        p = _pair(p)
        return k, s, (p[0], p[0], p[1], p[1]), d, False
    k = _pair(a["kernel_size"])
    s = _pair(a.get("stride") or k)
    p = _pair(a.get("padding", 0))
    d = _pair(a.get("dilation", 1)) if op == "maxpool" else (1, 1)
    return k, s, (p[0], p[0], p[1], p[1]), d, bool(a.get("ceil_mode", False))


def _padded(spatial: tuple[int, int] | None, pad: tuple[int, int, int, int]) -> tuple[int, int] | None:
    return None if spatial is None else (spatial[0] + pad[0] + pad[1], spatial[1] + pad[2] + pad[3])


class _Trace:
    """The state of one watched forward pass: the formula's size and the receptive field of every
    4-D tensor seen, the layers, the replayable operations and the linear layers' multiply-adds."""

    def __init__(self) -> None:
        self.state: dict[int, _T] = {}
        self.keep: list = []  # tensors stay alive, so that no id is reused during the pass
        self.layers: list[Layer] = []
        self.ops: list[tuple] = []
        self.names: list[str] = [""]
        self.same_modules = 0  # depth inside a timm "same"-padding module (its F.pad is dynamic)
        self.linear_macs = 0

    def start(self, x) -> None:
        self._put(x, _T(0, tuple(x.shape[-2:])))

    def _put(self, t, st: _T) -> _T:
        st.idx = len(self.keep)
        self.state[id(t)] = st
        self.keep.append(t)
        return st

    def get(self, t) -> _T | None:
        return self.state.get(id(t))

    def seen(self, func, args, kwargs, out) -> None:
        name = getattr(func, "__name__", "").lstrip("_")
        if name == "conv2d":
            self._window("conv", _bind(_CONV_ARGS, args, kwargs), out)
        elif name in ("max_pool2d", "max_pool2d_with_indices"):
            self._window("maxpool", _bind(_MAX_ARGS, args, kwargs), out)
        elif name == "avg_pool2d":
            self._window("avgpool", _bind(_AVG_ARGS, args, kwargs), out)
        elif name == "linear" and args and len(args) > 1:
            w = args[1]
            self.linear_macs += int(w.shape[0] * w.shape[1] * args[0].numel() // args[0].shape[-1] // args[0].shape[0])
        elif name == "pad":
            self._pad(args, kwargs, out)
        else:
            self._other(name, args, kwargs, out)

    def _pad(self, args, kwargs, out) -> None:
        src = self.get(args[0]) if args else None
        pads = tuple(args[1] if len(args) > 1 else kwargs.get("pad", ()))
        if src is None or len(pads) != 4 or out.dim() != 4:
            return self._other("pad", args, kwargs, out)
        left, right, top, bottom = (int(p) for p in pads)
        pre = src.pre if src.pre is not None else src.size
        acc = (src.pad[0] + top, src.pad[1] + bottom, src.pad[2] + left, src.pad[3] + right)
        st = self._put(out, _T(0, _padded(pre, acc), src.rf, src.jump, acc, pre))
        self.ops.append(("pad", src.idx, st.idx, (top, bottom, left, right), self.same_modules > 0))

    def _window(self, op: str, a: dict[str, Any], out) -> None:
        x = a["input"]
        res = out[0] if isinstance(out, tuple) else out
        src = self.get(x) or _T(-1, None, math.nan, math.nan)
        k, s, p, d, ceil = _window(op, a, tuple(x.shape[-2:]))
        pad = tuple(p[i] + src.pad[i] for i in range(4))
        n_in = src.pre if src.pre is not None else src.size
        form = None if n_in is None else tuple(
            out_size(n_in[i], k[i], s[i], pad[2 * i] + pad[2 * i + 1], d[i], ceil) for i in range(2))
        measured_in = tuple(x.shape[-2:]) if src.pre is None else (x.shape[-2] - sum(src.pad[:2]),
                                                                  x.shape[-1] - sum(src.pad[2:]))
        c_in, c_out = int(x.shape[1]), int(res.shape[1])
        groups = int(a.get("groups", 1)) if op == "conv" else c_in
        w = int(k[0] * k[1] * (c_in // groups) * c_out) if op == "conv" else 0
        b = c_out if op == "conv" and a.get("bias") is not None else 0
        o_h, o_w = int(res.shape[-2]), int(res.shape[-1])
        span = max(d[0] * (k[0] - 1), d[1] * (k[1] - 1))
        rf, jump = src.rf + span * src.jump, src.jump * max(s)
        self.layers.append(Layer(
            self.names[-1], op, c_in, c_out, k, s, pad, d, groups if op == "conv" else 1, n_in, measured_in,
            form, (o_h, o_w), w, b, w * o_h * o_w, rf, jump))
        st = self._put(res, _T(0, form, rf, jump))
        same = self.same_modules > 0 or isinstance(a.get("padding"), str) and a["padding"] == "same"
        self.ops.append(("window", src.idx, st.idx, (k, s, p, d, ceil, same)))

    def _other(self, name: str, args, kwargs, out) -> None:
        outs = [t for t in _tensors(out) if t.dim() == 4]
        if not outs:
            return
        ins = [(t, self.get(t)) for t in _tensors(args) + _tensors(list(kwargs.values()))]
        ins = [(t, st) for t, st in ins if st is not None]
        if not ins:
            return
        rf, jump = max(st.rf for _, st in ins), max(st.jump for _, st in ins)
        for o in outs:
            shape = tuple(o.shape[-2:])
            same = [st for t, st in ins if t.dim() == 4 and tuple(t.shape[-2:]) == shape and st.pre is None]
            if same:
                st = self._put(o, _T(0, same[0].size, rf, jump))
                self.ops.append(("same", [x.idx for x in same], st.idx))
            elif shape == (1, 1):  # a global pooling (mean, adaptive pool to 1): sees the whole image
                st = self._put(o, _T(0, (1, 1), GLOBAL, jump))
                self.ops.append(("const", st.idx, (1, 1)))
            else:  # interpolation, an adaptive pool to a size > 1, ...: no formula here
                st = self._put(o, _T(0, None, rf, jump))
                self.ops.append(("unknown", st.idx))


def replay(ops: list[tuple], n: int) -> bool | None:
    """Whether the traced operations accept an ``n`` x ``n`` input by the formula (every map at least
    1 x 1, the operands of every element-wise operation the same size); None when an operation has no
    formula (then only forward passes can tell)."""
    sizes: dict[int, tuple[int, int] | None] = {0: (n, n)}
    for op in ops:
        if op[0] == "pad":
            _, src, dst, (t, b, left, r), dynamic = op
            sizes[dst] = sizes[src] if dynamic else _padded(sizes[src], (t, b, left, r))
        elif op[0] == "window":
            _, src, dst, (k, s, p, d, ceil, same) = op
            n_in = sizes.get(src)
            if n_in is None:
                return None
            if same:
                out = tuple(-(-n_in[i] // s[i]) for i in range(2))
            else:
                out = tuple(out_size(n_in[i], k[i], s[i], p[2 * i] + p[2 * i + 1], d[i], ceil) for i in range(2))
            if min(out) < 1:
                return False
            sizes[dst] = out
        elif op[0] == "same":
            got = {sizes.get(i) for i in op[1]}
            if None in got:
                return None
            if len(got) > 1:
                return False
            sizes[op[2]] = got.pop()
        elif op[0] == "const":
            sizes[op[1]] = op[2]
        else:
            return None
    return True


@dataclass
class ModelArch:
    """The per-layer table of one model at one input size, with its totals and measured speed."""

    name: str
    img_size: int
    channels: int
    classes: int
    layers: list[Layer]
    params: int  # by the formulas
    params_torch: int  # sum of numel over the module's parameters (timm's count)
    params_other: int  # parameters of layer types without a formula here (counted by numel)
    macs: int  # multiply-adds of the convolutions and linear layers, per image
    final_map: tuple[int, int] | None  # the last convolution or pooling's output
    min_input: int | None  # the smallest square input accepted
    min_input_how: str  # how min_input was found and checked
    infer_img_s: float | None = None
    train_img_s: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def mismatches(self) -> int:
        return sum(not la.matches for la in self.layers)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["mismatches"] = self.mismatches
        for row, la in zip(d["layers"], self.layers, strict=True):
            row["matches"] = la.matches
            row["receptive_field"] = None if la.receptive_field == GLOBAL else la.receptive_field
        return d


def _watch(model, x):
    """One forward pass of ``model`` on ``x`` under the trace; returns the trace."""
    import torch
    from torch.overrides import TorchFunctionMode

    trace = _Trace()

    class Mode(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            trace.seen(func, args, kwargs, out)
            return out

    def pre(name, same):
        def hook(module, inputs):
            trace.names.append(name)
            trace.same_modules += same

        return hook

    def post(same):
        def hook(module, inputs, output):
            trace.names.pop()
            trace.same_modules -= same

        return hook

    handles = []
    for name, m in model.named_modules():
        if name:
            same = int(type(m).__name__.endswith("Same"))
            handles += [m.register_forward_pre_hook(pre(name, same)), m.register_forward_hook(post(same))]
    try:
        trace.start(x)
        with torch.no_grad(), Mode():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return trace


def count_params(model) -> tuple[int, int, int]:
    """(parameters by formula, parameters by numel (timm's count), parameters of layers without a
    formula here): convolutions, linear layers and normalisations by their shapes' formulas."""
    from torch import nn

    by_formula = other = 0
    for m in model.modules():
        own = dict(m.named_parameters(recurse=False))
        if not own:
            continue
        if isinstance(m, nn.Conv2d):
            k = m.kernel_size
            by_formula += k[0] * k[1] * (m.in_channels // m.groups) * m.out_channels
            by_formula += m.out_channels if m.bias is not None else 0
        elif isinstance(m, nn.Linear):
            by_formula += m.in_features * m.out_features + (m.out_features if m.bias is not None else 0)
        elif isinstance(m, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)) and len(own) <= 2:
            c = m.num_features if hasattr(m, "num_features") else (
                m.num_channels if hasattr(m, "num_channels") else math.prod(m.normalized_shape))
            by_formula += c * len(own)
        else:
            n = sum(p.numel() for p in own.values())
            by_formula += n
            other += n
    total = sum(p.numel() for p in model.parameters())
    return by_formula, total, other


def _runs(name: str, size: int, channels: int) -> bool:
    """Whether a forward pass of ``name`` at ``size`` px runs (eval mode, one image)."""
    import torch

    from shiftkit.core.errors import ConfigError

    try:
        model = build(name, size, channels, 10)
        with torch.no_grad():
            model(torch.zeros(1, channels, size, size))
    except (RuntimeError, ValueError, ConfigError, AssertionError):
        return False
    return True


def smallest_input(name: str, ops: list[tuple], img_size: int, channels: int) -> tuple[int | None, str]:
    """The smallest square input ``name`` accepts, and how it was found: by the formula (replayed
    over the traced operations) and checked by forward passes at that size and one pixel less, or,
    where an operation has no formula, by bisection over forward passes."""
    by_formula = None
    for n in range(1, img_size + 1 if ops else 1):
        ok = replay(ops, n)
        if ok is None:
            break
        if ok:
            by_formula = n
            break
    if by_formula is not None:
        below = by_formula == 1 or not _runs(name, by_formula - 1, channels)
        if _runs(name, by_formula, channels) and below:
            return by_formula, "formula, checked by forward passes"
        return by_formula, "formula, but forward passes DISAGREE"
    lo, hi = 1, img_size  # forward passes only: the smallest size that runs, assuming larger ones do
    if not _runs(name, hi, channels):
        return None, f"forward passes: none up to {hi} px"
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if _runs(name, mid, channels) else (mid + 1, hi)
    return lo, "forward passes (no formula for every operation)"


def analyse(name: str, img_size: int, channels: int = 3, classes: int = 1000, *,
            find_smallest: bool = True) -> ModelArch:
    """The per-layer arithmetic of ``name`` at ``img_size`` px, checked against a forward pass.

    Raises:
        ModelError: on an unknown model name.
        ConfigError: when the model cannot take an input of ``img_size`` px (the message says the
            smallest it takes).
    """
    import torch

    from shiftkit.core.errors import ConfigError

    model = build(name, img_size, channels, classes)
    x = torch.zeros(1, channels, img_size, img_size)
    try:
        trace = _watch(model, x)
    except (RuntimeError, ValueError, AssertionError) as exc:
        trace = None
        why = str(exc).splitlines()[0][:160]
    if trace is None:
        small = smallest_input(name, [], img_size * 8, channels)[0] if find_smallest else None
        at_least = f"; it takes {small} px and more" if small else ""
        raise ConfigError(f"--img-size {img_size} is too small for {name!r} ({why}){at_least}.")
    by_formula, total, other = count_params(model)
    macs = sum(la.macs for la in trace.layers) + trace.linear_macs
    final = trace.layers[-1].out_measured if trace.layers else None
    small, how = smallest_input(name, trace.ops, img_size, channels) if find_smallest else (None, "not computed")
    arch = ModelArch(name, img_size, channels, classes, trace.layers, by_formula, total, other, macs, final,
                     small, how)
    if arch.mismatches:
        arch.notes.append(f"{arch.mismatches} layer(s) whose formula size differs from the forward pass")
    if by_formula != total:
        arch.notes.append(f"parameters by formula {by_formula:,} differ from the module's {total:,}")
    return arch


def throughput(name: str, img_size: int, channels: int = 3, classes: int = 1000, *,
               seconds: float = 1.0, batch_size: int = 8, device: str = "cpu") -> tuple[float, float]:
    """(inference, training) images per second of ``name`` at ``img_size`` px on ``device``, each
    measured for about ``seconds`` after one warm-up batch (at least one timed batch each)."""
    import torch

    dev = torch.device(device)
    model = build(name, img_size, channels, classes).to(dev)
    x = torch.randn(batch_size, channels, img_size, img_size, device=dev)
    y = torch.randint(0, classes, (batch_size,), device=dev)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def infer(xb=x, yb=y):
        with torch.no_grad():
            model(xb)

    def step(xb=x, yb=y):
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()

    rates = []
    for mode, fn in (("eval", infer), ("train", step)):
        getattr(model, mode)()
        t0 = time.perf_counter()
        fn(x[:2], y[:2])  # warm-up on two images (batch norm needs more than one in train mode)
        # a smaller batch where one of ``batch_size`` would take much longer than ``seconds`` (a big model
        # on a slow CPU): the measurement stays about that long
        b = max(2, min(batch_size, int(2 * seconds / max(time.perf_counter() - t0, 1e-9))))
        n, t0 = 0, time.perf_counter()
        while True:
            fn(x[:b], y[:b])
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            n += b
            if time.perf_counter() - t0 >= seconds:
                break
        rates.append(n / (time.perf_counter() - t0))
    return rates[0], rates[1]
