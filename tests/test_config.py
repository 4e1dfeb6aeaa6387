import pytest

from shiftkit import config
from shiftkit.errors import ConfigError, InputPathError


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
        ({"min_size": -3}, r"'ingest.min_size' parameter must be > 0. Got -3 instead"),
        ({"min_size": "big"}, r"'ingest.min_size' parameter must be an integer. Got 'big' instead"),
        ({"near_dup_radius": 40}, r"'ingest.near_dup_radius' parameter must be in \[0, 32\]"),
        ({"workers": True}, r"must be an integer"),
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
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load_params(f)


@pytest.mark.parametrize("pair", ["web", "=x", "web="], ids=["no-equals", "no-name", "no-path"])
def test_assignments_need_name_and_value(pair):
    with pytest.raises(ConfigError, match="must be NAME=PATH"):
        config.parse_assignments([pair])


def test_assignments_reject_repeats():
    with pytest.raises(ConfigError, match="twice"):
        config.parse_assignments(["a=1", "a=2"])
