"""Camera degradations, the fit's colour features and its working size (issue 21).

Truth tests build their own cases with known answers: neutral patches through a known white
balance, flat images for noise that grows with the level, an edge for sharpening halos, a colour
checkerboard for chroma subsampling; and a fit on real photographs (scikit-learn's sample images)
whose target has, or has not, a warm cast.
"""

from __future__ import annotations

import numpy as np
import pytest

from shiftkit import synth
from shiftkit.images import features
from shiftkit.synth import working
from tests import camera_helpers as ch

COLOUR_STEPS = {"white_balance", "saturation", "chromatic_aberration", "jpeg_chroma"}


def _apply(name: str, img: np.ndarray, seed: int = 0, **values) -> np.ndarray:
    return synth.Recipe((synth.make_step(name, **values),)).apply(img, seed)[0]


def _flat(level: int, side: int = 64, rgb: bool = True) -> np.ndarray:
    return np.full((side, side, 3) if rgb else (side, side), level, np.uint8)


def test_white_balance_applies_its_channel_gains_and_leaves_grey_images_alone():
    out = _apply("white_balance", _flat(120), red=1.25, green=1.0, blue=0.8).astype(float)
    assert [out[..., c].mean() for c in range(3)] == pytest.approx([150, 120, 96], abs=0.6)
    assert _apply("white_balance", _flat(250), red=1.25).max() == 255  # clipped, not wrapped
    grey = _flat(120, rgb=False)
    assert np.array_equal(_apply("white_balance", grey, red=1.25, blue=0.8), grey)


def test_sensor_noise_grows_with_the_level_as_shot_noise_does():
    dark = _apply("sensor_noise", _flat(30, 128), shot=0.08, read=0.0).astype(float)
    bright = _apply("sensor_noise", _flat(220, 128), shot=0.08, read=0.0).astype(float)
    # std = shot x sqrt(level): the ratio of stds is sqrt(220 / 30) = 2.7
    assert bright.std() / dark.std() == pytest.approx(np.sqrt(220 / 30), rel=0.15)
    assert dark.std() == pytest.approx(255 * 0.08 * np.sqrt(30 / 255), rel=0.1)
    read = _apply("sensor_noise", _flat(30, 128), shot=0.0, read=0.02).astype(float)
    assert read.std() == pytest.approx(0.02 * 255, rel=0.1)


def test_vignette_darkens_the_corners_and_keeps_the_centre():
    out = _apply("vignette", _flat(200), strength=0.5).astype(float)
    assert out[32, 32].mean() >= 199 and out[0, 0].mean() == pytest.approx(100, abs=2)


def test_exposure_gamma_and_saturation_follow_their_formulas():
    out = _apply("exposure_gamma", _flat(128), exposure=1.0, gamma=2.0)
    assert out.mean() == pytest.approx(255 * (128 / 255) ** 2, abs=1)
    assert _apply("exposure_gamma", _flat(100), exposure=2.0, gamma=1.0).mean() == pytest.approx(200, abs=1)
    colour = np.zeros((16, 16, 3), np.uint8)
    colour[..., 0] = 200
    grey = _apply("saturation", colour, factor=0.0)
    assert np.abs(grey[..., 0].astype(int) - grey[..., 1]).max() <= 1


def test_sharpen_overshoots_at_an_edge():
    edge = np.full((32, 32), 60, np.uint8)
    edge[:, 16:] = 180
    out = _apply("sharpen", edge, amount=1.5, radius=1.0)
    assert out[:, 16:].max() > 185 and out[:, :16].min() < 55  # halos on both sides
    assert out[:, 28:].mean() == pytest.approx(180, abs=1)  # far from the edge: unchanged


def test_jpeg_chroma_subsampling_smears_fine_colour_and_not_without():
    checker = np.zeros((64, 64, 3), np.uint8)
    checker[::2, :, 0] = 255  # red and blue rows alternate: detail in the chroma only... and luma
    checker[1::2, :, 2] = 255
    sub = _apply("jpeg_chroma", checker, quality=95, chroma=2).astype(int)
    full = _apply("jpeg_chroma", checker, quality=95, chroma=0).astype(int)
    err_sub = np.abs(sub - checker).mean()
    err_full = np.abs(full - checker).mean()
    assert err_sub > 3 * err_full


def test_chromatic_aberration_moves_red_against_green():
    img = np.zeros((64, 64, 3), np.uint8)
    img[:, 50:52] = 255  # a white line off the centre
    out = _apply("chromatic_aberration", img, red=0.1, blue=0.0)
    assert np.array_equal(out[..., 1], img[..., 1])
    assert not np.array_equal(out[..., 0], img[..., 0])


def test_phone_resize_reaches_the_scale_without_low_pass():
    img = np.zeros((100, 100), np.uint8)
    img[:, ::2] = 255  # finest detail: an antialiased reduction would average it to grey
    out = _apply("phone_resize", img, scale=0.3, cubic=0)
    area = _apply("downscale", img, scale=0.3, keep_size=0)  # area interpolation: averaged to near grey
    assert out.shape == area.shape == (30, 30)
    assert out.std() > 60 and area.std() < 25  # aliasing keeps high-contrast false stripes


def test_colour_features_are_zero_on_grey_and_see_a_warm_cast():
    photo = ch.crops(1, 64, 0)[0]
    grey = np.ascontiguousarray(photo[..., 1])
    assert not features.colour_features(grey).any()
    assert not features.colour_features(np.repeat(grey[..., None], 3, axis=2)).any()
    warm = np.clip(photo * np.array(ch.WARM), 0, 255).astype(np.uint8)
    i = features.COLOUR_STATS.index("log_r_g")
    base = features.colour_matrix([photo])[0, 2 * features.COLOUR_THUMB**2:]
    cast = features.colour_matrix([warm])[0, 2 * features.COLOUR_THUMB**2:]
    assert cast[i] - base[i] == pytest.approx(np.log(ch.WARM[0]), abs=0.03)


def test_grey_samples_offer_no_colour_step():
    web, target = ch.crops(8, 32, 0), ch.crops(8, 32, 1)
    grey = [np.ascontiguousarray(p[..., 1]) for p in web], [np.ascontiguousarray(p[..., 1]) for p in target]
    ctx = synth.grid_context(*grey, [None] * 8)
    assert ctx.colour is None
    names = {m.name for m in synth.candidates(ctx) if isinstance(m, synth.Step)}
    assert not COLOUR_STEPS & names
    colour_ctx = synth.grid_context(web, [np.clip(p * np.array(ch.WARM), 0, 255).astype(np.uint8) for p in target],
                                    [75.0] * 8)
    wb = [m for m in synth.candidates(colour_ctx) if isinstance(m, synth.Step) and m.name == "white_balance"]
    # the measured cast is among the moves: red up, blue down, by about the camera's gains
    assert any(abs(m.ranges["red"][0] / m.ranges["green"][0] - 1.18) < 0.08
               and abs(m.ranges["blue"][0] / m.ranges["green"][0] - 0.8) < 0.08 for m in wb)


def test_a_recipe_fitted_reduced_is_scaled_back_in_pixel_units_only():
    r = synth.Recipe((synth.make_step("gaussian_blur", sigma=0.5), synth.make_step("downscale", scale=0.5),
                      synth.make_step("sensor_noise", shot=0.02, read=0.01),
                      synth.make_step("white_balance", red=1.2, blue=0.8)))
    full = working.to_full_size(r, 0.25)
    got = {s.name: s.ranges for s in full.steps}
    assert got["gaussian_blur"]["sigma"] == (2.0, 2.0)
    assert got["downscale"]["scale"] == (0.5, 0.5)  # relative: unchanged
    assert got["sensor_noise"]["shot"] == (0.08, 0.08) and got["sensor_noise"]["read"] == (0.04, 0.04)
    assert got["white_balance"]["red"] == (1.2, 1.2)
    imgs = [np.zeros((256, 256), np.uint8)] * 3
    assert working.working_factor(imgs, [np.zeros((224, 224), np.uint8)], 64) == 0.25
    assert working.working_factor([np.zeros((28, 28), np.uint8)], [np.zeros((8, 8), np.uint8)], 64) == 1.0


@pytest.mark.parametrize("cast", [True, False], ids=["warm-cast", "no-cast"])
def test_the_fit_chooses_a_colour_step_on_a_cast_target_only(tmp_path, cast):
    ch.write_pair(tmp_path, 48, 48, web_side=96, target_side=80, cast=cast, seed=3)
    web, _ = ch.load_folder(tmp_path / "web")
    target, quality = ch.load_folder(tmp_path / "target")
    fit = synth.fit_recipe(web, target, target_jpeg=quality, seed=0, workers=1, max_steps=3, refine=2)
    chosen = COLOUR_STEPS & set(fit.recipe.names)
    if cast:
        assert "white_balance" in chosen, synth.describe(fit.recipe)
        wb = next(s for s in fit.recipe.steps if s.name == "white_balance").ranges
        assert np.mean(wb["red"]) / np.mean(wb["green"]) > 1.05  # warm, as the camera
        assert np.mean(wb["blue"]) / np.mean(wb["green"]) < 0.95
    else:
        assert "white_balance" not in chosen, synth.describe(fit.recipe)


def test_the_prefix_cache_gives_the_bytes_of_the_whole_recipe():
    web = ch.crops(6, 48, 0)
    base = synth.Recipe((synth.make_step("gaussian_blur", sigma=(0.5, 1.5)),
                         synth.make_step("downscale", 0.6, scale=0.5)))
    longer = synth.Recipe(base.steps + (synth.make_step("sensor_noise", shot=(0.01, 0.05)),
                                        synth.make_step("jpeg", 0.5, quality=(40, 90))))
    cache = working.PrefixCache(web, 7)
    cache.prime([base])
    direct = [longer.apply(p, 7 + i)[0] for i, p in enumerate(web)]
    assert all(np.array_equal(a, b) for a, b in zip(cache.moved(longer), direct, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(cache.moved(longer, 3), direct[:3], strict=True))


def test_a_backbone_s_pooled_features_can_join_the_fit(tmp_path):
    from shiftkit.core.errors import ModelError

    web, target = ch.crops(12, 40, 0), ch.crops(12, 40, 1)
    rows = features.backbone_matrix(web[:3] + [np.ascontiguousarray(web[0][..., 0])], "resnet10t", size=32)
    assert rows.shape[0] == 4 and rows.shape[1] > 100 and np.isfinite(rows).all()
    fit = synth.fit_recipe(web, target, seed=0, workers=1, max_steps=0, refine=0, model="resnet10t", model_size=32)
    assert 0.0 <= fit.before["auc"] <= 1.0 and not fit.recipe.steps  # the backbone's columns were scored
    with pytest.raises(ModelError, match="not-a-model"):
        features.backbone_matrix(web[:2], "not-a-model")


def test_params_photos_lists_every_key_of_params_yaml_and_changes_only_the_photo_settings():
    """`cp params-photos.yaml params.yaml && dvc repro` needs every key dvc.yaml names: a key
    added to params.yaml but not here broke `dvc repro` on the photos ('curve.selection')."""
    from pathlib import Path

    import yaml

    from shiftkit.params import load_params

    root = Path(__file__).resolve().parents[1]
    base = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    photos = yaml.safe_load((root / "params-photos.yaml").read_text(encoding="utf-8"))
    assert {s: list(v) for s, v in photos.items()} == {s: list(v) for s, v in base.items()}
    changed = {(s, k) for s in base for k in base[s] if base[s][k] != photos[s][k]}
    assert ("example", "name") in changed and ("ingest", "group_depth") in changed
    assert {s for s, _ in changed} <= {"example", "ingest", "split", "train", "curve"}
    assert load_params(root / "params-photos.yaml").example.name == "photos"
