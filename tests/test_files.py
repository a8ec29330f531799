"""The one atomic file writer: nothing half-written, errors that name the target."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from napari_cebra.core.files import replace_file_atomically, target_path, write_texts_atomically


def _write(text: bytes):
    return lambda handle: handle.write(text)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_file_is_written_whole_and_readable_by_others(tmp_path):
    path = tmp_path / "model.pt"
    written = replace_file_atomically(path, _write(b"abc"))
    assert written == path
    assert path.read_bytes() == b"abc"
    # mkstemp would leave 0o600; a new file gets 0o666 minus the umask like any other
    umask = os.umask(0)
    os.umask(umask)
    assert _mode(path) == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_replaced_file_keeps_its_mode(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"old")
    path.chmod(0o640)
    replace_file_atomically(path, _write(b"new"))
    assert path.read_bytes() == b"new"
    assert _mode(path) == 0o640


def test_tilde_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    written = replace_file_atomically("~/model.pt", _write(b"x"))
    assert written == tmp_path / "model.pt"
    assert (tmp_path / "model.pt").read_bytes() == b"x"
    assert target_path("~/a.txt") == tmp_path / "a.txt"


def test_symlink_is_written_through(tmp_path):
    real = tmp_path / "store" / "model.pt"
    real.parent.mkdir()
    real.write_bytes(b"old")
    link = tmp_path / "latest.pt"
    link.symlink_to(real)
    written = replace_file_atomically(link, _write(b"new"))
    assert written == real
    assert link.is_symlink()
    assert real.read_bytes() == b"new"


def test_full_disk_leaves_the_old_file_and_names_the_target(tmp_path):
    path = tmp_path / "results.json"
    path.write_bytes(b"old")

    def fail(handle):
        handle.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left") as caught:
        replace_file_atomically(path, fail)
    assert caught.value.errno == errno.ENOSPC
    assert str(path) in str(caught.value)
    assert ".tmp" not in str(caught.value)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_other_errors_remove_the_temporary_file(tmp_path):
    path = tmp_path / "model.pt"

    def interrupted(handle):
        handle.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        replace_file_atomically(path, interrupted)
    assert list(tmp_path.iterdir()) == []


def test_missing_folder_is_named(tmp_path):
    target = tmp_path / "nowhere" / "model.pt"
    with pytest.raises(FileNotFoundError, match="nowhere") as caught:
        replace_file_atomically(target, _write(b"x"))
    assert str(target) in str(caught.value)


def test_texts_are_all_or_nothing(tmp_path, monkeypatch):
    first, second = tmp_path / "results.json", tmp_path / "report.html"
    first.write_text("old results")
    real_replace = os.replace
    calls = []

    def replace_then_fail(source, destination):
        calls.append(destination)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", replace_then_fail)
    with pytest.raises(OSError, match=str(first)):
        write_texts_atomically({first: "new results", second: "<html>"})
    monkeypatch.setattr(os, "replace", real_replace)
    assert calls == [first]
    assert first.read_text() == "old results"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]

    assert write_texts_atomically({first: "new results", second: "<html>"}) == [first, second]
    assert first.read_text() == "new results"
    assert second.read_text() == "<html>"
