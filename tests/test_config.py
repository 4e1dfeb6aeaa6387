import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shiftkit import params as config
from shiftkit.cli import run as cli
from shiftkit.core import config as core_config
from shiftkit.core.errors import ConfigError, InputPathError

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_when_no_file():
    p = config.load_params(None)
    assert p.ingest.min_size == 8


def test_unknown_key_lists_valid_ones():
    with pytest.raises(ConfigError, match=r"Unknown parameter\(s\) ingest.nope; valid ones in ingest: .*min_size"):
        config.params_from_mapping({"ingest": {"nope": 1}})


def test_unknown_section_lists_valid_ones():
    with pytest.raises(ConfigError, match=r"Unknown section\(s\) bogus.*valid sections: .*ingest"):
        config.params_from_mapping({"bogus": {}})


@pytest.mark.parametrize(
    "values, message",
    [
        ({"min_size": -3}, r"^The 'ingest.min_size' parameter must be an integer >= 1. Got -3 instead.$"),
        ({"min_size": "big"}, r"'ingest.min_size' parameter must be an integer >= 1. Got 'big' instead"),
        ({"near_dup_radius": 40}, r"'ingest.near_dup_radius' parameter must be an integer in \[0, 32\]. Got 40"),
        ({"workers": True}, r"'ingest.workers' parameter must be an integer in \[0, 4096\]. Got True instead"),
    ],
    ids=["negative", "string", "radius-too-big", "bool-is-not-int"],
)
def test_bad_values_name_the_parameter(values, message):
    with pytest.raises(ConfigError, match=message):
        config.params_from_mapping({"ingest": values})


def test_yaml_file_round_trip(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text("ingest:\n  min_size: 4\n  max_pixels: 1000\n")
    p = config.load_params(f)
    assert (p.ingest.min_size, p.ingest.max_pixels) == (4, 1000)
    assert p.replace("ingest", min_size=9).ingest.min_size == 9
    with pytest.raises(ConfigError):
        p.replace("ingest", min_size=0)


def test_missing_explicit_file(tmp_path):
    with pytest.raises(InputPathError, match="does not exist"):
        config.load_params(tmp_path / "nope.yaml")


def test_invalid_yaml(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text("ingest: [unclosed\n")
    with pytest.raises(ConfigError, match=r"not valid YAML: .*\(line 2, column 1\)\.$") as info:
        config.load_params(f)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("pair", ["web", "=x", "web="], ids=["no-equals", "no-name", "no-path"])
def test_assignments_need_name_and_value(pair):
    with pytest.raises(ConfigError, match="must be NAME=PATH"):
        config.parse_assignments([pair])


def test_assignments_reject_repeats():
    with pytest.raises(ConfigError, match="twice"):
        config.parse_assignments(["a=1", "a=2"])


# --- one source of defaults, constraints declared once -----------------------------------------


def test_params_yaml_equals_the_dataclass_defaults_key_by_key():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    assert sorted(raw) == config.section_names()
    loaded = config.load_params(ROOT / "params.yaml")
    for name in config.section_names():
        default = config.section_class(name)()
        keys = [f.name for f in dataclasses.fields(default)]
        assert list(raw[name]) == keys, f"params.yaml section {name} lists other keys, or in another order"
        for key in keys:
            got, want = getattr(getattr(loaded, name), key), getattr(default, key)
            assert got == want, f"{name}.{key}: params.yaml has {got!r}, the dataclass default is {want!r}"


def test_a_section_field_without_constraints_is_refused():
    @core_config.frozen
    class Bare(core_config.ParamsSection):
        size: int = 3

    with pytest.raises(TypeError, match=r"declare size with config.param"):
        core_config.section("test_bare")(Bare)
    assert "test_bare" not in config.section_names()


def test_direct_construction_is_checked_like_the_file():
    with pytest.raises(ConfigError, match=r"^The 'split.seed' parameter must be an integer in \[0, 4294967295\]"):
        config.SplitParams(seed=-1)
    with pytest.raises(ConfigError, match=r"'train.channels' parameter must be one of 1, 3. Got True instead"):
        config.TrainParams(channels=True)


@pytest.mark.parametrize(
    "section, values, message",
    [
        ("report", {"seed": -1}, r"'report.seed' parameter must be an integer in \[0, 4294967295\]. Got -1 instead"),
        ("train", {"seed": -1}, r"'train.seed' parameter must be an integer in \[0, 4294967295\]. Got -1 instead"),
        ("train", {"seed": 1e23}, r"'train.seed' parameter must be an integer in \[0, 4294967295\]. Got 1e\+23"),
        ("train", {"seed": 2**32}, r"'train.seed' parameter must be an integer in \[0, 4294967295\]. Got 4294967296"),
        ("train", {"finetune_lr": math.nan}, r"'train.finetune_lr' parameter must be > 0 \(a finite number\). Got nan"),
        ("check", {"drift_effect": math.inf}, r"'check.drift_effect' parameter must be > 0 \(a finite number\)"),
        ("train", {"head_lr": 10**400}, r"'train.head_lr' parameter must be > 0 \(a finite number\). Got inf"),
        ("ingest", {"min_size": 2**70}, r"'ingest.min_size' parameter must be an integer >= 1 \(that fits"),
        ("train", {"device": "cuda:x"}, r"'train.device' parameter must be 'auto', 'cpu', 'cuda' or 'cuda:N'"),
        ("evaluate", {"device": "tpu"}, r"'evaluate.device' parameter must be 'auto', 'cpu', 'cuda' or 'cuda:N'"),
        ("split", {"target_domain": "a\nb"}, r"'split.target_domain' parameter must be a domain name. Got 'a\\nb'"),
        ("report", {"properties": ["blur", "shoe"]}, r"'report.properties' parameter must be one of .* Got 'shoe'"),
        ("report", {"properties": "blur"}, r"'report.properties' parameter must be a list .* Got 'blur' instead"),
        ("split", {"dev": 0.6, "test": 0.5}, r"'split.dev' and 'split.test' fractions must sum to less than 1"),
    ],
)
def test_values_are_checked_at_load(section, values, message):
    with pytest.raises(ConfigError, match=message) as info:
        config.params_from_mapping({section: values})
    assert "\n" not in str(info.value)


def test_speed_only_keys_are_declared_with_the_field():
    # cache / cache_mb choose the batch path (device-side augmentation needs the cache): results
    assert config.speed_only_keys("train") == ("workers", "threads")
    assert config.speed_only_keys("ingest") == ("workers",)
    assert "preview" not in config.speed_only_keys("synth")  # it changes a file synth writes


# --- the params file at the boundary: encodings, keys, aliases, sizes ---------------------------


def _write(tmp_path, data: bytes | str, name="params.yaml") -> Path:
    f = tmp_path / name
    f.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return f


@pytest.mark.parametrize(
    "text, message",
    [
        ("1: foo\n", r"The section name 1 in .*params.yaml is not a string \(YAML read it as int\); valid sections"),
        ("split: {1: 2, foo: 3}\n", r"The parameter name 1 in split is not a string .*; valid parameters: strategy"),
        ("split:\n  yes: 2\n", r"The parameter name True in split is not a string \(YAML read it as bool\)"),
        ("split:\n  seed: 1\n  seed: 2\n", r"params.yaml has the key 'seed' twice in one mapping \(line 3\)\.$"),
        ("train: [1, 2]\n", r"Section 'train' of .*params.yaml must be a mapping of parameters. Got \[1, 2\] instead"),
        ("- 1\n", r"params.yaml must hold a mapping of sections. Got list"),
        ("train: !!python/object:os.system {}\n", r"params.yaml is not valid YAML: could not determine a constructor"),
        ("a: " + "[" * 100_000, r"params.yaml nests values deeper than 20 levels \(line 1\)\.$"),
    ],
    ids=["int-section", "int-key", "bool-key", "repeated-key", "section-not-mapping", "not-a-mapping", "python-tag",
         "deep-nesting"],
)
def test_malformed_params_files_are_one_line_errors(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message) as info:
        config.load_params(_write(tmp_path, text))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "latin-1"])
def test_a_params_file_that_is_not_utf8_is_named(tmp_path, encoding):
    f = _write(tmp_path, "split:\n  target_domain: 'cafétéria'\n".encode(encoding))
    with pytest.raises(ConfigError, match=r"params.yaml is not UTF-8 text .*; save it as UTF-8\.$"):
        config.load_params(f)


def test_a_utf8_bom_is_fine(tmp_path):
    f = _write(tmp_path, "\ufeffsplit:\n  target_domain: cafétéria\n")
    assert config.load_params(f).split.target_domain == "cafétéria"


BILLION_LAUGHS = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]" for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
)


def test_yaml_aliases_are_refused_before_they_expand(tmp_path):
    assert len(BILLION_LAUGHS) < 400  # 9**9 "lol"s once expanded
    with pytest.raises(ConfigError, match=r"params.yaml uses a YAML alias at line 2; aliases are not allowed"):
        config.load_params(_write(tmp_path, BILLION_LAUGHS))
    with pytest.raises(ConfigError, match="aliases are not allowed"):
        config.load_params(_write(tmp_path, "train: &t {seed: 1}\nevaluate: *t\n"))


def test_messages_quote_only_a_prefix_of_a_value(tmp_path):
    f = _write(tmp_path, "split:\n  target_domain: " + "x" * 5000 + "\n  seed: [" + "1," * 2000 + "1]\n")
    with pytest.raises(ConfigError) as info:
        config.load_params(f)
    assert len(str(info.value)) < 250 and str(info.value).endswith("... instead."), str(info.value)


def test_params_files_that_are_not_regular_files_or_too_big(tmp_path):
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(InputPathError, match=r"dir.yaml is not a regular file"):
        config.load_params(tmp_path / "dir.yaml")
    big = _write(tmp_path, "# " + "x" * config.MAX_PARAMS_BYTES + "\n", "big.yaml")
    with pytest.raises(ConfigError, match=r"big.yaml is larger than 1 MiB"):
        config.load_params(big)


# --- fuzz: any value for any field either loads or is one ConfigError naming section.key --------


FIELDS = [(name, f.name) for name in config.section_names() for f in dataclasses.fields(config.section_class(name))]
HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=300),
    st.integers(min_value=2**31, max_value=2**80),
    st.integers(max_value=-(2**63)),
    st.floats(),  # NaN, infinities, subnormals included
    st.floats(min_value=0, max_value=1),
    st.text(max_size=12),
    st.sampled_from(["auto", "cpu", "cuda:1", "target", "density_ratio", "blur", "1e23", ".nan", "~", ""]),
    st.lists(st.one_of(st.integers(), st.sampled_from(["blur", "noise", "x"])), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


def _assert_loaded_or_named(data: dict, load) -> None:
    try:
        params = load(data)
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message and len(message) < 800, message
        (section, values), = data.items()
        assert section in message and any(f"{section}.{key}" in message for key in values), message
        return
    for section, values in data.items():
        for key, value in values.items():
            got = getattr(getattr(params, section), key)
            assert got == (tuple(value) if isinstance(value, list) else value)


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FIELDS), HOSTILE)
def test_fuzz_params_values(field, value):
    section, key = field
    _assert_loaded_or_named({section: {key: value}}, config.params_from_mapping)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    st.sampled_from(config.section_names()),
    st.dictionaries(st.sampled_from(sorted({k for _, k in FIELDS})), HOSTILE, min_size=1, max_size=4),
)
def test_fuzz_params_files(section, values):
    """Several keys at once (known or not in this section), written as YAML and read as a file is."""
    text = yaml.safe_dump({section: values})
    _assert_loaded_or_named(yaml.safe_load(text), lambda d: config.parse_params_text(text, "fuzz.yaml"))


# --- the command line: exit 2, one line on stderr, nothing written ------------------------------


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"1: foo\n", "section name 1"),
        (b"split: {1: 2, foo: 3}\n", "parameter name 1 in split"),
        ("example:\n  seed: 'caf\u00e9'\n".encode("latin-1"), "is not UTF-8 text"),
        ("example:\n  seed: 1\n".encode("utf-16"), "is not UTF-8 text"),
        (b"report:\n  seed: -1\n", "'report.seed' parameter"),
        (b"train:\n  seed: 1e23\n", "'train.seed' parameter"),
        (b"train:\n  finetune_lr: .nan\n", "'train.finetune_lr' parameter"),
        (BILLION_LAUGHS.encode(), "aliases are not allowed"),
        (b"example:\n  web_images: yes\n", "'example.web_images' parameter"),
        (b"example:\n  nope: 1\n", "Unknown parameter(s) example.nope"),
    ],
    ids=["int-section", "int-key", "latin-1", "utf-16", "report-seed", "seed-1e23", "nan", "aliases", "bool",
         "unknown"],
)
def test_cli_bad_params_exit_2_with_one_line(tmp_path, capfd, content, expected):
    bad = _write(tmp_path, content)
    code = cli.main(["example", "digits", str(tmp_path / "out"), "--params", str(bad)])
    err = capfd.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and expected in err and "Traceback" not in err, err
    assert str(bad) in err  # the file is named, as well as the key
    assert not (tmp_path / "out").exists()


def test_stage_script_refuses_billion_laughs_quickly(tmp_path):
    bad = _write(tmp_path, BILLION_LAUGHS)
    run = subprocess.run(
        [sys.executable, "pipelines/example.py", "--out", str(tmp_path / "raw"), "--params", str(bad)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "aliases are not allowed" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "raw").exists()
