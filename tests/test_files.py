"""lale_geo.files: temporary names, publishing without replacing what the run does not own, the output
checks and the output locks."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from lale_geo.errors import InvalidInputError, OutputExistsError, OutputLockedError, RasterIOError
from lale_geo.files import (
    check_output,
    is_remote,
    lock_path,
    locked_outputs,
    publish,
    published,
    run_tag,
    temporary_path,
    write_error_line,
)


def test_a_temporary_path_is_hidden_beside_the_target_keeps_its_suffix_and_is_unique_per_call(tmp_path):
    final = tmp_path / "map.tif"
    first, second = temporary_path(final), temporary_path(final)
    assert first != second
    for tmp in (first, second):
        assert tmp.parent == tmp_path and tmp.name.startswith(".map.tif.") and tmp.name.endswith(".part.tif")
        assert tmp.suffix == ".tif"
    tagged = tmp_path / ".map.tif.abc123.part.tif"  # a resumable run's name: the same on every call
    assert temporary_path(final, "abc123") == temporary_path(str(final), "abc123") == tagged


def test_run_tags_are_unique_and_name_the_process():
    tags = {run_tag() for _ in range(50)}
    assert len(tags) == 50
    assert all(tag.startswith(f"{os.getpid()}-") for tag in tags)


def test_publish_without_overwrite_never_replaces_an_existing_file(tmp_path):
    final, tmp = tmp_path / "out.json", tmp_path / ".out.json.x.part.json"
    final.write_text("theirs")
    tmp.write_text("ours")
    with pytest.raises(OutputExistsError, match="out.json: was created by something else") as error:
        publish(tmp, final, overwrite=False)
    assert "\n" not in str(error.value)
    assert final.read_text() == "theirs" and not tmp.exists()


def test_publish_moves_the_file_and_with_overwrite_replaces_an_existing_one(tmp_path):
    final, tmp = tmp_path / "out.json", tmp_path / ".out.json.x.part.json"
    tmp.write_text("first")
    assert publish(tmp, final, overwrite=False) == final
    tmp.write_text("second")
    assert publish(str(tmp), str(final), overwrite=True) == final
    assert final.read_text() == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_published_publishes_on_success_and_removes_every_temporary_on_error(tmp_path):
    final = tmp_path / "item.gpkg"
    with published(final) as tmp:
        tmp.write_text("ok")
    assert final.read_text() == "ok" and [p.name for p in tmp_path.iterdir()] == ["item.gpkg"]

    final = tmp_path / "other.gpkg"
    with pytest.raises(RasterIOError, match=r"other.gpkg: writing failed \(disk full\); nothing was published$"):
        with published(final) as tmp:
            tmp.write_text("half")
            tmp.with_name(tmp.name + "-journal").write_text("sqlite journal")
            raise OSError("disk full")
    with pytest.raises(KeyError):  # not a write error: it goes through as it is
        with published(final) as tmp:
            tmp.write_text("half")
            raise KeyError("bug")
    assert [p.name for p in tmp_path.iterdir()] == ["item.gpkg"]


def test_published_without_overwrite_leaves_an_existing_output_alone(tmp_path):
    final = tmp_path / "item.json"
    final.write_text("old")
    with pytest.raises(OutputExistsError):
        with published(final, overwrite=False) as tmp:
            tmp.write_text("new")
    assert final.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["item.json"]
    with published(final, overwrite=True) as tmp:
        tmp.write_text("new")
    assert final.read_text() == "new"


def test_check_output_refuses_a_missing_folder_an_existing_file_and_the_input_in_one_line(tmp_path):
    missing = tmp_path / "nowhere" / "map.tif"
    folder = re.escape(str(missing.parent))
    with pytest.raises(InvalidInputError, match=f"map.tif: output folder {folder} does not exist$"):
        check_output(missing, overwrite=True)
    existing = tmp_path / "map.tif"
    existing.write_bytes(b"x")
    with pytest.raises(OutputExistsError, match="map.tif: exists; pass overwrite=True to replace it$"):
        check_output(existing, overwrite=False)
    with pytest.raises(InvalidInputError, match="output is the input file"):
        check_output(existing, overwrite=True, inputs=["https://example.org/map.tif", tmp_path / "." / "map.tif"])
    assert check_output(str(existing), overwrite=True, inputs=["https://example.org/x.tif"]) == existing
    assert [p.name for p in tmp_path.iterdir()] == ["map.tif"]  # the probe file is gone


def test_a_held_lock_refuses_a_second_holder_naming_the_pid_and_releases_what_it_took(tmp_path):
    first, second = tmp_path / "a.tif", tmp_path / "b.tif"
    with locked_outputs([second]):
        assert lock_path(second) == tmp_path / ".b.tif.lock"
        assert lock_path(second).read_text().strip() == str(os.getpid())
        with pytest.raises(OutputLockedError, match=rf"b.tif: another run \(pid {os.getpid()}\) is writing"):
            with locked_outputs([first, second]):
                pass
        assert not lock_path(first).exists()  # the lock it took before failing is released
        with locked_outputs([first]):  # and can be taken again
            pass
    assert list(tmp_path.iterdir()) == []


def test_remote_paths_and_write_error_lines():
    assert is_remote("https://host/scene.tif") and is_remote("/vsizip/a.zip/b.tif") and is_remote("s3://b/k")
    assert not is_remote(Path("https:/host/scene.tif")) and not is_remote("scene.tif")
    assert write_error_line("sqlite3_exec(INSERT INTO t VALUES (1)) failed: disk I/O error\nmore") == (
        "SQLite: disk I/O error")
    assert write_error_line("") == ""
