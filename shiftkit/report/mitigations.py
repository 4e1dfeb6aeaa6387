"""The report's "Mitigations compared" section: every arm of the learning curve against the
baseline, one table per budget, from the curve's data alone (``curve.json``: points, worth, and how
each point trained), so that this module knows no arm by name and imports nothing of the curve.

Per arm and budget: dev error with its interval, the gain over the baseline with its interval and
its Holm-adjusted p (one family over every arm x budget of the curve, as the worth figure uses),
the four gaps, the worth in labelled target images, training seconds, and how many target images
without labels it read. A sentence names the best arm at a budget only when its gain is claimed,
and says so plainly when an arm made things worse.
"""

from __future__ import annotations

from typing import Any

from shiftkit.report.text import ci, pct, pts

BASELINE = "baseline"  # the arm the curve compares every other with (named so in curve.json)
_SHORT = {"avoidable_bias": "bias", "variance": "variance", "data_mismatch": "mismatch", "dev_overfit": "dev overfit"}
GAPS = ("avoidable_bias", "variance", "data_mismatch", "dev_overfit")


def _seconds(p: dict[str, Any]) -> str:
    s = p.get("seconds")
    return "copied" if s is None else f"{s:.0f}"


def budget_rows(data: dict[str, Any], budget: str) -> list[list[str]]:
    """The rows of one budget's table: the baseline first, then every other arm."""
    worth = {w["arm"]: w for w in data["worth"] if w["budget"] == budget}
    points = sorted((p for p in data["points"] if p["budget"] == budget), key=lambda p: (p["arm"] != BASELINE,))
    out = []
    for p in points:
        w = worth.get(p["arm"])
        gain = "—" if w is None else f"{pts(w['gain'])} {ci(*w['gain_ci'])}"
        p_adj = "—" if w is None else f"{w['p_adjusted']:.3f}"
        claimed = "—" if w is None else w["text"]
        gaps = [pts(p["gaps"][g]["value"]) if g in p.get("gaps", {}) else "n/a" for g in GAPS]
        unl = p.get("unlabelled", 0)
        out.append([p["arm"], f"{pct(p['dev_error'])} {ci(*p['dev_ci'], unit='%')}", gain, p_adj, *gaps,
                    claimed, _seconds(p), f"yes ({unl:,})" if unl else "no"])
    return out


HEADER = ["arm", "dev error", "gain over baseline", "Holm p", *[_SHORT[g] for g in GAPS],
          "worth (labelled images)", "train s", "unlabelled images"]


def verdict(data: dict[str, Any], budget: str) -> str:
    """The budget's sentence: the best arm only when its gain is claimed; arms that made things worse."""
    ws = [w for w in data["worth"] if w["budget"] == budget]
    if not ws:
        return f"At budget {budget}: no arm to compare with the baseline."
    claimed = [w for w in ws if w["status"] != "not_estimable"]
    worse = [w["arm"] for w in ws if w["gain_ci"][1] < 0]
    tests = len(data["worth"])
    if claimed:
        best = max(claimed, key=lambda w: w["gain"])
        text = (f"At budget {budget}, **{best['arm']}** is the best arm: it cuts the baseline's dev error by "
                f"{pts(best['gain'], ' points')} {ci(*best['gain_ci'])} (Holm-adjusted p {best['p_adjusted']:.3f} "
                f"over {tests} comparisons), worth {best['text']} labelled target images.")
    else:
        text = (f"At budget {budget}, no arm's gain over the baseline is claimed (Holm over {tests} comparisons): "
                "none is recommended over plain training.")
    if worse:
        text += f" Worse than the baseline here (the gain's interval lies below zero): {', '.join(worse)}."
    return text


def selection_text(data: dict[str, Any]) -> str:
    """How the arms' hyperparameters were chosen, as the points record it."""
    sel = sorted({p["selection"] for p in data["points"] if p.get("selection")})
    if not sel:
        return "No arm tuned a hyperparameter."
    return ("Hyperparameters of the arms that adapt (domain-loss weight, pseudo-label threshold, weight cap): "
            + "; ".join(sel) + ". Test images are never read before the final evaluation.")


def noise_text(data: dict[str, Any]) -> str:
    """What the intervals hold beyond the dev images' resampling: the training noise, or why not."""
    sd, df, draws = data.get("training_sd", 0.0), data.get("training_df", 0), data.get("baseline_draws", 1)
    if df:
        return (f"Every interval also holds the training noise: {draws} trainings of the baseline at each budget, "
                f"each with its own seed, land {100 * sd:.1f} points apart (standard deviation, {df} degrees of "
                "freedom), and each point's resampled errors get that much again, so a gain must clear two "
                "trainings' luck.")
    return ("The intervals resample the dev images only; they do not hold the spread between two trainings of "
            "one arm with other seeds (a few points on small data; curve.baseline_draws >= 2 measures it): "
            "before acting on a claimed gain near its threshold, train both arms again with another train.seed.")


def section(data: dict[str, Any]):
    """The section, or None when the curve compares no arm with the baseline."""
    from shiftkit.report.blocks import Section, Table, Text

    if not data.get("worth"):
        return None
    blocks: list = [Text(
        "Each arm against the baseline at the same budget of labelled target images, on the same dev images "
        "and resamples as the learning curve. Gains are one-sided tests controlled together (Holm's step-down "
        "over every arm and budget); an arm is named best only when its gain is claimed. " + noise_text(data), "muted"),
        Text(selection_text(data), "muted")]
    for budget in data["budgets"]:
        blocks.append(Text(verdict(data, budget)))
        blocks.append(Table(HEADER, budget_rows(data, budget), "l" + "r" * (len(HEADER) - 1),
                            title=f"Mitigations at budget {budget}", wide=("Holm p", "train s")))
    return Section("mitigations", "Mitigations compared", 2, blocks)
