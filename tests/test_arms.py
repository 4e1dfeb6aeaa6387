"""The arm registry: an arm added from outside shiftkit is one ``Arm(...)`` entry, trained and evaluated
by the real curve code and accepted by ``curve.arms`` exactly while it is registered."""

from __future__ import annotations

import pytest

from shiftkit.core import files as io
from shiftkit.core import schema
from shiftkit.core.errors import ConfigError, RegistryError
from shiftkit.curve import arms, budgets, stage
from shiftkit.curve.params import CurveParams
from shiftkit.training.params import EvaluateParams, TrainParams
from tests.train_helpers import build_example

# trained from scratch on the budget's target images alone: what the web images are worth
ALONE = arms.Arm("target_alone", verb="Training on the target alone", colour="#937860",
                 trains_on=arms.target_only)


@pytest.fixture
def registered():
    arms.register_arm(ALONE)
    try:
        yield ALONE
    finally:
        if ALONE.name in arms.ARMS:
            arms.unregister_arm(ALONE.name)


@pytest.mark.usefixtures("one_torch_thread")
def test_an_arm_registered_from_outside_trains_evaluates_and_leaves(registered, tmp_path):
    m, s = build_example(tmp_path, n_web=40, n_target=40, n_dev=10, n_test=6, n_bridge=6)
    cparams = CurveParams(arms=("baseline", registered.name), budgets=(8,), finetune_epochs=1)
    folder = tmp_path / "budgets"
    assert budgets.write_budgets(m, s, folder, cparams) == {"8": 8}
    tparams = TrainParams(img_size=16, batch_size=16, finetune_epochs=1, head_epochs=0, pretrained=False)
    model = tmp_path / "models" / f"{registered.name}-8"
    table = budgets.budget_file(folder, 8)
    line = stage.train_arm(registered.name, 8, m, table, model, tparams, cparams)
    assert line.startswith(f"curve {registered.name}@8: 8 target images")
    man = io.read_table(m, schema.MANIFEST).select("image_id", "domain")
    trained = io.read_table(model / stage.SPLITS_NAME, schema.SPLITS_TABLE).join(man, on="image_id")
    assert trained.filter(trained["split"] == "train")["domain"].to_list() == ["target"] * 8
    out = stage.point_path(tmp_path / "predictions", registered.name, 8)
    stage.evaluate_arm(registered.name, m, model, out, EvaluateParams(batch_size=32))
    preds = io.read_table(out, schema.PREDICTIONS)
    assert preds.filter(preds["split"] == "dev").height == 10 and "synth" not in preds["domain"].to_list()

    arms.unregister_arm(registered.name)
    with pytest.raises(ConfigError, match=r"The 'curve.arms' parameter must be one of 'baseline', 'synth'"):
        CurveParams(arms=("baseline", registered.name))
    with pytest.raises(RegistryError, match="Unknown arm 'target_alone'"):
        stage.train_arm(registered.name, 8, m, table, tmp_path / "again", tparams, cparams)


def test_a_second_arm_of_a_registered_name_is_refused():
    with pytest.raises(RegistryError, match="registered twice"):
        arms.register_arm(arms.Arm("synth", verb="Again", colour="#000000"))
    assert arms.get_arm("synth").verb == "Synthesis"
    with pytest.raises(RegistryError, match="Unknown arm 'nothing'"):
        arms.unregister_arm("nothing")


def test_the_arms_vocabulary_is_the_registry():
    assert arms.arm_names()[:7] == ("baseline", "synth", "finetune", "dann", "coral", "selftrain", "weighted")
    assert CurveParams(arms=("finetune", "baseline")).arms == ("finetune", "baseline")
    with pytest.raises(ConfigError, match="The 'curve.arms' parameter must be one of 'baseline', 'synth', "
                                          r"'finetune', 'dann', 'coral', 'selftrain', 'weighted', 'synth\+dann', "
                                          r"'synth\+coral', 'synth\+selftrain', 'synth\+weighted'. "
                                          "Got 'magic' instead."):
        CurveParams(arms=("baseline", "magic"))
