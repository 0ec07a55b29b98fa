"""Atomic writes: nothing partial, the umask honoured, failures named."""

from __future__ import annotations

import os
import stat

import pytest

from microclip.errors import RunError
from microclip.io import atomic_open, atomic_write_json, atomic_write_text, canonical_hash


def test_atomic_write_creates_parents_and_honours_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a" / "b.txt", "hello")
    finally:
        os.umask(old)
    path = tmp_path / "a" / "b.txt"
    assert path.read_text() == "hello"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's 0600


def test_a_failing_writer_leaves_neither_the_file_nor_a_temporary(tmp_path):
    atomic_write_text(tmp_path / "keep.txt", "old")
    with pytest.raises(ZeroDivisionError), atomic_open(tmp_path / "keep.txt") as handle:
        handle.write("new")
        raise ZeroDivisionError
    assert (tmp_path / "keep.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_folder_is_one_error_naming_the_path(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(RunError, match=r"ro/x.json: cannot write"):
            atomic_write_json(folder / "x.json", {"a": 1})
    finally:
        folder.chmod(0o700)


def test_a_file_in_place_of_a_folder_is_one_error_naming_the_path(tmp_path):
    (tmp_path / "blocker").write_text("")
    with pytest.raises(RunError, match="blocker/x.json: cannot write"):
        atomic_write_json(tmp_path / "blocker" / "x.json", {"a": 1})


def test_canonical_hash_ignores_key_order_and_sees_values():
    assert canonical_hash({"a": 1, "b": [1, 2]}) == canonical_hash({"b": [1, 2], "a": 1})
    assert canonical_hash({"a": 1}) != canonical_hash({"a": 2})
    assert len(canonical_hash({"a": 1})) == 16
