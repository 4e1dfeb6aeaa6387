import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shiftkit.cli import run as cli
from shiftkit.core.errors import ConfigError, InputPathError
from shiftkit.ingest import example, photos
from shiftkit.ingest.params import ExampleParams


def _digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.png"))
    }


def test_writes_both_domains_with_the_requested_counts_and_sizes(tmp_path):
    counts = example.write_example("digits", tmp_path, ExampleParams(web_images=60, target_images=25,
                                                                     unlabelled_images=15))
    assert counts == {"web": 60, "target": 25, "unlabelled": 15}
    web = sorted((tmp_path / "web").rglob("*.png"))
    tgt = sorted((tmp_path / "target").rglob("*.png"))
    assert len(web) == 60 and len(tgt) == 25
    assert Image.open(web[0]).size == (28, 28) and Image.open(tgt[0]).size == (8, 8)
    assert {p.parent.name for p in web} <= {str(d) for d in range(10)}
    assert np.asarray(Image.open(tgt[0])).max() <= 255 and np.asarray(Image.open(tgt[0])).max() > 16  # scaled to 0..255


def test_same_params_same_bytes_and_seed_changes_the_draw(tmp_path):
    p = ExampleParams(web_images=40, target_images=10, seed=3)
    example.write_example("digits", tmp_path / "a", p)
    example.write_example("digits", tmp_path / "b", p)
    example.write_example("digits", tmp_path / "a", p)  # rewriting over itself is allowed
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    example.write_example("digits", tmp_path / "c", ExampleParams(web_images=40, target_images=10, seed=4))
    assert _digest(tmp_path / "c") != _digest(tmp_path / "a")


def test_shipped_subset_is_small_balanced_and_credited():
    x, y = example.mnist_subset()
    assert x.shape == (12000, 28, 28) and x.dtype == np.uint8
    assert np.bincount(y, minlength=10).min() >= 1000
    data = Path(example.__file__).parent / "data"
    assert (data / "mnist_subset.npz").stat().st_size < 5_000_000
    readme = (data / "README.md").read_text()
    assert "CC BY-SA 3.0" in readme and "LeCun" in readme


def test_refuses_to_overwrite_foreign_files(tmp_path):
    (tmp_path / "web" / "cats").mkdir(parents=True)
    (tmp_path / "web" / "cats" / "tom.jpg").write_bytes(b"x")
    with pytest.raises(InputPathError, match="already holds files that the example did not write"):
        example.write_example("digits", tmp_path, ExampleParams(web_images=5, target_images=5))
    assert (tmp_path / "web" / "cats" / "tom.jpg").exists()


def _index(path: Path) -> int:
    return int(path.stem.split("_")[1])


def test_the_unlabelled_pool_is_disjoint_from_the_labelled_target_drawn_alike_and_nameless(tmp_path):
    p = ExampleParams(web_images=5, target_images=900, unlabelled_images=600, seed=2)
    example.write_example("digits", tmp_path, p)
    tgt = sorted((tmp_path / "target").rglob("*.png"))
    pool = sorted((tmp_path / "unlabelled").rglob("*.png"))
    assert len(tgt) == 900 and len(pool) == 600
    assert all(f.parent == tmp_path / "unlabelled" for f in pool)  # flat: no label folder
    x, y = example.load_digits_images()
    t_idx, p_idx = {_index(f) for f in tgt}, [_index(f) for f in pool]
    assert not t_idx & set(p_idx)  # disjoint by load_digits index ...
    assert not set(_digest(tmp_path / "target").values()) & set(_digest(tmp_path / "unlabelled").values())  # bytes
    assert all(np.array_equal(np.asarray(Image.open(f)), x[_index(f)]) for f in pool[:50])
    # drawn alike: one seeded permutation, so the class counts of pool and target are independent of
    # which is which (chi-squared test of the 2 x 10 table; a pool of one class gives p ~ 0)
    from scipy.stats import chi2_contingency

    table = [np.bincount(y[p_idx], minlength=10), np.bincount(y[sorted(t_idx)], minlength=10)]
    assert chi2_contingency(table).pvalue > 0.01
    assert chi2_contingency([np.bincount(y[y < 5][:600], minlength=10) + 1, table[1]]).pvalue < 1e-6
    # the labelled target is not the first 900 images (a random draw), and the seed changes it
    assert t_idx != set(range(900))
    example.write_example("digits", tmp_path / "b", ExampleParams(web_images=5, target_images=900,
                                                                  unlabelled_images=600, seed=3))
    assert {_index(f) for f in (tmp_path / "b" / "unlabelled").glob("*.png")} != set(p_idx)


@pytest.mark.parametrize(
    "name, params, match",
    [
        ("faces", ExampleParams(), "Unknown example 'faces'; valid examples: digits, photos"),
        ("digits", ExampleParams(web_images=20000), "at most 12000"),
        ("digits", ExampleParams(target_images=1500, unlabelled_images=300),
         r"'example.target_images' \+ 'example.unlabelled_images' parameters must be at most 1,797.*1,500 \+ 300"),
    ],
    ids=["unknown-name", "too-many-web-images", "pool-beyond-load-digits"],
)
def test_bad_requests_raise(tmp_path, name, params, match):
    with pytest.raises(ConfigError, match=match):
        example.write_example(name, tmp_path, params)


def test_cli_example_uses_params(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text("example:\n  web_images: 30\n  target_images: 12\n  unlabelled_images: 7\n")
    assert cli.main(["example", "digits", str(tmp_path / "ex"), "--params", str(params)]) == 0
    assert len(list((tmp_path / "ex" / "web").rglob("*.png"))) == 30
    assert len(list((tmp_path / "ex" / "target").rglob("*.png"))) == 12
    assert len(list((tmp_path / "ex" / "unlabelled").rglob("*.png"))) == 7
    assert cli.main(["example", "faces", str(tmp_path / "ex2")]) == 2
    err = capsys.readouterr().err
    assert "Unknown example 'faces'" in err and "Traceback" not in err
    # a pool that would overlap the labelled target: one line, exit 2, the earlier example kept
    before = _digest(tmp_path / "ex")
    params.write_text("example:\n  web_images: 30\n  target_images: 1500\n  unlabelled_images: 300\n")
    assert cli.main(["example", "digits", str(tmp_path / "ex"), "--params", str(params)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "example.unlabelled_images" in err[0] and "at most 1,797" in err[0]
    assert _digest(tmp_path / "ex") == before


# ---------------------------------------------------------------------------------------------
# the photos example


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_photos_example_objects_views_camera_and_licences(tmp_path):
    p = ExampleParams(objects=4, views=2, size=48)
    counts = example.write_example("photos", tmp_path / "a", p)
    n_classes = len(photos.SOURCES)
    web_objs, target_objs = photos.objects_of(4, 0, "cat")
    only_web = len(set(web_objs) - set(target_objs))
    assert counts == {"web": n_classes * len(web_objs) * 2, "target": n_classes * len(target_objs) * 2,
                      "unlabelled": n_classes * only_web * 2}
    pool = sorted((tmp_path / "a" / "unlabelled").rglob("*.jpg"))
    assert len(pool) == counts["unlabelled"] > 0
    # one neutral folder per object: no class name in the pool's paths
    assert not any(s.label in f.relative_to(tmp_path / "a").as_posix() for f in pool for s in photos.SOURCES)
    web = sorted((tmp_path / "a" / "web").rglob("*.png"))
    tgt = sorted((tmp_path / "a" / "target").rglob("*.jpg"))
    assert len(web) == counts["web"] and len(tgt) == counts["target"]
    assert {f.parent.parent.name for f in web} == {s.label for s in photos.SOURCES}
    w, t = Image.open(web[0]), Image.open(tgt[0])
    assert w.size == (48, 48) and w.mode == "RGB" and t.format == "JPEG" and t.size == (30, 30)
    # the camera's warm cast: red over blue rises from web to target on average
    def warmth(files):
        a = np.stack([np.asarray(Image.open(f).convert("RGB").resize((30, 30)), float) for f in files])
        return (a[..., 0].mean() + 1) / (a[..., 2].mean() + 1)
    assert warmth(tgt) > 1.1 * warmth(web)
    note = (tmp_path / "a" / photos.NOTE_FILE).read_text()
    assert "CC0" in note and "CC BY 2.0" in note and "public domain" in note
    example.write_example("photos", tmp_path / "b", p)
    example.write_example("photos", tmp_path / "a", p)  # rewriting over itself is allowed
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")
    example.write_example("digits", tmp_path / "a", ExampleParams(web_images=5, target_images=5))  # replaces
    assert not list((tmp_path / "a").rglob("*.jpg"))


def test_cli_example_photos(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("example:\n  objects: 2\n  views: 1\n  size: 32\n")
    assert cli.main(["example", "photos", str(tmp_path / "ex"), "--params", str(params)]) == 0
    assert len(list((tmp_path / "ex" / "web").rglob("*.png"))) == len(photos.SOURCES)
