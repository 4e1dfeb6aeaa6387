"""`dvc exp run -S 'curve.budgets=[...]'` on the repository's own dvc.yaml: DVC's override parser
rewrites params.yaml, shiftkit reads the result, and the matrix stages expand to one train and one
evaluate entry per (arm, budget), each reading the budget table the budgets step writes."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from shiftkit.curve import budgets as curve
from shiftkit.curve import stage as curve_run
from shiftkit.params import load_params
from tests.helpers import dvc_stages


def _pipeline(tmp_path: Path, overrides: list[str]):
    _, stages = dvc_stages(tmp_path, overrides)
    return load_params(tmp_path / "params.yaml"), stages


@pytest.mark.parametrize("override", ["curve.budgets=[0,100,300,all]", "curve.budgets=[0,all]",
                                      "curve.budgets=[25,all]"])
def test_every_budget_of_an_override_is_one_cached_point_per_arm(tmp_path, override):
    p, stages = _pipeline(tmp_path, [override])
    wanted = override.split("=[", 1)[1].rstrip("]").split(",")
    assert [curve.budget_name(b) for b in p.curve.budgets] == wanted
    points = [(a, curve.budget_name(b)) for a in p.curve.arms for b in p.curve.budgets]
    trains = {k for k in stages if k.startswith("curve_train@")}
    evals = {k for k in stages if k.startswith("curve_evaluate@")}
    assert trains == {f"curve_train@{a}-{b}" for a, b in points}
    assert evals == {f"curve_evaluate@{a}-{b}" for a, b in points}
    summary_deps = {d.def_path for d in stages["curve"].deps}
    for a, b in points:
        train, evaluate = stages[f"curve_train@{a}-{b}"], stages[f"curve_evaluate@{a}-{b}"]
        argv = shlex.split(train.cmd)
        assert argv[argv.index("--arm") + 1] == a and argv[argv.index("--budget") + 1] == b
        # the train entry reads exactly the table the budgets step writes for its budget
        table = curve.budget_file("data/curve/budgets", curve.parse_budget(b)).as_posix()
        assert table in {d.def_path for d in train.deps} and argv[argv.index("--splits") + 1] == table
        model = f"models/{a}-{b}"
        assert model in {o.def_path for o in train.outs} and model in {d.def_path for d in evaluate.deps}
        (pred,) = [o.def_path for o in evaluate.outs]
        assert pred == Path(curve_run.point_path("data/curve/predictions", a, curve.parse_budget(b))).parent.as_posix()
        assert any(pred.startswith(d + "/") for d in summary_deps)


def test_an_override_shiftkit_rejects_is_one_line_not_a_run(tmp_path):
    from shiftkit.core.errors import ConfigError

    with pytest.raises(ConfigError, match="curve.budgets"):
        _pipeline(tmp_path, ["curve.budgets=[0,100,100]"])
