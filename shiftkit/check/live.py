"""The live gate of ``shiftkit check --model``: the drop's estimated error against dev's.

check/ may not import training/ (the import order), so the model never runs here: the CLI builds
an estimator (``shiftkit.training.unlabelled.live_estimator``) and the check stage calls it on the
drop's images (``run_check(..., estimate=...)``); its result reaches the rule below through
``CheckContext.live``:

``{"estimator": NAME, "dev_error": e, "audit": a, "drops": [{"drop": NAME, "images": n,
"estimate": x, "ci_low": lo, "ci_high": hi}, ...]}`` (fractions; the last drop is the one gated,
the earlier ones the window that ``--latest`` shows).

The rule ``error_rise`` blocks (error) when the estimate exceeds dev's real error by more than
``check.max_error_rise`` points, warns when it is within that limit but its whole interval lies
above dev's error, and records the figures (info) otherwise. Without ``--model`` the rule finds
nothing and costs nothing.
"""

from __future__ import annotations

from shiftkit.check.rules import CheckContext, Finding, rule

RULE = "error_rise"
PLOT = "live.png"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


@rule(RULE, needs_reference=False)
def error_rise(ctx: CheckContext) -> list[Finding]:
    live = getattr(ctx, "live", None)
    if not live:
        return []
    d = live["drops"][-1]
    dev, limit = live["dev_error"], ctx.params.max_error_rise / 100.0
    rise = d["estimate"] - dev
    # warning: within the limit, but the whole interval lies above dev's error (the drop is worse)
    severity = "error" if rise > limit else "warning" if d["ci_low"] > dev else "info"
    verdict = {"error": "above", "warning": "shown above dev but within", "info": "within"}[severity]
    message = (f"estimated error {_pct(d['estimate'])} [{_pct(d['ci_low'])}, {_pct(d['ci_high'])}] on "
               f"{d['images']:,} images of {d['drop']} ({live['estimator']}, audited on dev to "
               f"{100 * live['audit']:.1f} points) vs dev {_pct(dev)}: {100 * rise:+.1f} points, {verdict} "
               f"check.max_error_rise {ctx.params.max_error_rise:g} points")
    return [Finding(RULE, severity, message, (), {**live, "rise": rise, "threshold": limit})]


def markdown(findings) -> list[str]:
    """The window table (the estimate per drop) and the plot's link, for check.md."""
    f = next((f for f in findings if f.rule == RULE), None)
    if f is None:
        return []
    lines = ["### Estimated error per drop (label-free)", "",
             f"Estimator {f.data['estimator']} (smallest audited error on dev, {100 * f.data['audit']:.1f} points); "
             f"dev error {_pct(f.data['dev_error'])}; blocks above {100 * f.data['threshold']:+.1f} points.", "",
             "| drop | images | estimated error | interval | rise vs dev (points) |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for d in f.data["drops"]:
        rise = 100 * (d["estimate"] - f.data["dev_error"])
        lines.append(f"| {d['drop']} | {d['images']:,} | {_pct(d['estimate'])} | "
                     f"[{_pct(d['ci_low'])}, {_pct(d['ci_high'])}] | {rise:+.1f} |")
    if len(f.data["drops"]) > 1:
        lines += ["", f"![estimated error per drop]({PLOT})"]
    return lines + [""]


def plot(findings) -> bytes | None:
    """PNG of the estimate per drop with its interval, dev's error and the blocking line (None
    without a window of two drops or more)."""
    f = next((f for f in findings if f.rule == RULE), None)
    if f is None or len(f.data["drops"]) < 2:
        return None
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drops = f.data["drops"]
    x = list(range(len(drops)))
    est = [100 * d["estimate"] for d in drops]
    lo = [100 * (d["estimate"] - d["ci_low"]) for d in drops]
    hi = [100 * (d["ci_high"] - d["estimate"]) for d in drops]
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    ax.errorbar(x, est, yerr=[lo, hi], fmt="o-", capsize=3, label="estimated error")
    ax.axhline(100 * f.data["dev_error"], color="grey", ls="--", label="dev error")
    ax.axhline(100 * (f.data["dev_error"] + f.data["threshold"]), color="red", ls=":", label="blocks above")
    ax.set_xticks(x, [str(d["drop"]) for d in drops])
    ax.set_ylabel("error (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
