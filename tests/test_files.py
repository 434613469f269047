"""Atomic writes leave either the old file or the complete new one."""

import pytest

from speat_metric.files import atomic_open, atomic_write_text


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "result.json"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as file:
            file.write("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [path.name for path in tmp_path.iterdir()] == ["result.json"]


def test_binary_write_and_parent_creation(tmp_path):
    target = tmp_path / "nested" / "data.bin"
    with atomic_open(target, "wb") as file:
        file.write(b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"


def test_append_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="mode must be 'w' or 'wb', got 'a'"):
        with atomic_open(tmp_path / "x", "a"):
            pass
