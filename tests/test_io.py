import polars as pl
import pytest

from shiftkit.core import files as io
from shiftkit.core import schema
from shiftkit.core.errors import DataError, InputPathError, SchemaError


def _splits(n=3):
    return pl.DataFrame({"image_id": [f"{i:064x}" for i in range(n)], "split": ["train"] * n, "group": ["g"] * n})


def test_write_then_read_is_identical_and_stable(tmp_path):
    p = tmp_path / "s.parquet"
    io.write_table(_splits(), p, schema.SPLITS_TABLE)
    first = p.read_bytes()
    io.write_table(_splits(), p, schema.SPLITS_TABLE)
    assert p.read_bytes() == first
    assert io.read_table(p, schema.SPLITS_TABLE).equals(_splits())


def test_failed_write_keeps_previous_file(tmp_path):
    p = tmp_path / "s.parquet"
    io.write_table(_splits(), p, schema.SPLITS_TABLE)
    before = p.read_bytes()
    with pytest.raises(SchemaError, match="missing column"):
        io.write_table(_splits().drop("group"), p, schema.SPLITS_TABLE)
    assert p.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["s.parquet"]


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(InputPathError, match="does not exist"):
        io.read_table(tmp_path / "nope.parquet", schema.SPLITS_TABLE)
    empty = tmp_path / "empty.parquet"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty file"):
        io.read_table(empty, schema.SPLITS_TABLE)
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="junk.parquet"):
        io.read_table(junk, schema.SPLITS_TABLE)
    other = tmp_path / "other.parquet"
    pl.DataFrame({"image_id": ["a"]}).write_parquet(other)
    with pytest.raises(SchemaError, match="lacks column"):
        io.read_table(other, schema.SPLITS_TABLE)
    typed = tmp_path / "typed.parquet"
    pl.DataFrame({"image_id": [1], "split": ["train"], "group": ["g"]}).write_parquet(typed)
    with pytest.raises(SchemaError, match="image_id is Int64"):
        io.read_table(typed, schema.SPLITS_TABLE)


def test_output_folder_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InputPathError, match="not a folder"):
        io.ensure_dir(f)


def test_json_is_sorted_and_atomic(tmp_path):
    p = io.write_json(tmp_path / "a.json", {"b": 1, "a": [1, 2]})
    assert p.read_text().index('"a"') < p.read_text().index('"b"')
    assert io.read_json(p) == {"a": [1, 2], "b": 1}
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(DataError, match="not valid json"):
        io.read_json(tmp_path / "bad.json")
