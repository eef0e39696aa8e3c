"""accelkit.files: atomic writes, OS errors as one line, report sets published as a unit, folder locks."""

from __future__ import annotations

import errno

import pytest

from accelkit import files
from accelkit.errors import InputError, StorageError


def test_storage_errors_name_the_fix() -> None:
    for code, words in (
        (errno.ENOSPC, "disk is full"),
        (errno.EACCES, "permission denied"),
        (errno.EROFS, "read-only"),
    ):
        err = files.storage_error(OSError(code, "x"), "cannot write a")
        assert isinstance(err, StorageError) and words in str(err) and "\n" not in str(err)


def test_atomic_path_refuses_and_cleans_up(tmp_path) -> None:
    dest = tmp_path / "a.txt"
    files.write_text_atomic(dest, "one")
    with pytest.raises(InputError, match="--force"):
        files.write_text_atomic(dest, "two", force=False)
    with pytest.raises(RuntimeError):
        with files.atomic_path(dest, force=True) as tmp:
            tmp.write_text("half")
            raise RuntimeError
    assert dest.read_text() == "one" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    with pytest.raises(InputError, match="does not exist"):
        files.write_text_atomic(tmp_path / "no" / "b.txt", "x")


def test_publish_group_never_mixes_old_and_new(tmp_path, monkeypatch) -> None:
    """A crash between report files left a new results.json beside an old results.md; now the set loses its json instead."""
    out = tmp_path / "r"
    out.mkdir()
    for name in ("results.json", "results.md", "results.csv"):
        (out / name).write_text("old")
    stage = tmp_path / "stage"
    stage.mkdir()
    staged = {}
    for name in ("results.json", "results.md", "results.csv"):
        staged[name] = stage / name
        staged[name].write_text("new")
    real = files.publish
    calls = []

    def crash_on_second(tmp, dest):
        calls.append(dest.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(tmp, dest)

    monkeypatch.setattr(files, "publish", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        files.publish_group(out, staged, last="results.json")
    assert not (
        out / "results.json"
    ).exists()  # no json: readers see an incomplete report, never a mixed one
    assert all(
        (out / n).read_text() == "new" for n in ("results.md", "results.csv") if (out / n).exists()
    )
    monkeypatch.setattr(files, "publish", real)
    for name in staged:
        staged[name].write_text("new")
    written = files.publish_group(out, staged, last="results.json")
    assert list(written)[-1] == "results.json" and all(
        p.read_text() == "new" for p in written.values()
    )


def test_folder_lock_refuses_a_second_writer(tmp_path) -> None:
    with files.folder_lock(tmp_path / "r", "a benchmark report"):
        with pytest.raises(
            InputError, match="another accelkit process is writing a benchmark report"
        ):
            with files.folder_lock(tmp_path / "r", "a benchmark report"):
                pass
    with files.folder_lock(tmp_path / "r", "a benchmark report"):  # released
        pass
