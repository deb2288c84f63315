import json

import pytest

from lale_geo.errors import DatasetError
from lale_geo.training.class_tables import ClassTable, resolve_class_table, shipped_class_tables


def test_missing_class_table_names_the_options(tmp_path):
    with pytest.raises(DatasetError, match="dubai-aerial"):
        resolve_class_table(tmp_path)


def test_a_value_coded_table_gets_display_colours_splits_and_statistics(tmp_path):
    path = tmp_path / "classes.json"
    path.write_text(json.dumps({
        "name": "fields", "classes": [{"id": 1, "name": "crop", "value": 20}, {"id": 0, "name": "other", "value": 10}],
        "ignore": [0, [9, 9, 9]], "splits": {"train": ["a", "b"]}, "bands": ["nir", "red"],
        "input_range": [0, 10000], "mean": [0.3, 0.2], "std": [0.1, 0.1]}))
    table = resolve_class_table(tmp_path)
    assert table.class_names == ("other", "crop") and table.values == (10, 20) and table.num_classes == 2
    assert table.ignore_values == (0,) and table.ignore_colours == ((9, 9, 9),)
    assert table.splits == {"train": ("a", "b")} and table.input_range == (0.0, 10000.0)
    assert len(set(table.colours)) == 2 and all(len(c) == 3 for c in table.colours)


@pytest.mark.parametrize("content,message", [
    ({"classes": [{"id": 0, "name": "a"}, {"id": 2, "name": "b"}]}, "class ids must be 0..N-1"),
    ({"classes": [{"id": 0}]}, "not a valid class table"),
    ("not json", "not a valid class table"),
])
def test_bad_class_tables_are_one_line_errors_naming_the_file(tmp_path, content, message):
    path = tmp_path / "t.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(DatasetError, match=f"t.json: {message}"):
        ClassTable.read(path)


def test_shipped_tables_are_found_by_name_and_by_the_data_folders_name(tmp_path):
    assert {"dubai-aerial", "aras400k"} <= set(shipped_class_tables())
    assert resolve_class_table(tmp_path, "aras400k").name == ClassTable.read(shipped_class_tables()["aras400k"]).name
    folder = tmp_path / "dubai-aerial"
    folder.mkdir()
    assert resolve_class_table(folder).class_names[0] == "Building"
