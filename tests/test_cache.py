"""accelkit.cache: keys, verified reads, corrupt and swapped entries, unwritable folders, locks."""

from __future__ import annotations

import json
import threading
import time

from accelkit.cache import Cache, cache_dir, cache_key, cache_root, file_lock


def test_root_follows_the_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("ACCELKIT_CACHE_DIR", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c" and cache_dir("engines") == tmp_path / "c" / "engines"
    assert Cache("drift").folder == tmp_path / "c" / "drift"
    assert Cache("calibration", tmp_path / "mine").folder == tmp_path / "mine"


def test_key_is_canonical_and_sensitive() -> None:
    assert cache_key({"a": 1, "b": [1, 2]}) == cache_key({"b": [1, 2], "a": 1})
    assert cache_key({"a": 1}) != cache_key({"a": 2}) and len(cache_key({})) == 64


def test_store_then_hit_and_every_kind_of_damage_is_a_miss(tmp_path, caplog) -> None:
    c = Cache("x", tmp_path)
    key = cache_key({"k": 1})
    assert c.lookup(key, ".bin") is None
    path = c.store_bytes(key, ".bin", b"payload", {"what": "test"})
    assert path is not None and path.read_bytes() == b"payload" and c.lookup(key, ".bin") == path
    manifest = path.with_name(path.name + ".manifest.json")
    assert json.loads(manifest.read_text())["key"] == key
    with caplog.at_level("WARNING"):
        path.write_bytes(b"payloaD")  # same size, other content
        assert c.lookup(key, ".bin") is None and not path.exists()
        c.store_bytes(key, ".bin", b"payload")
        c.path_for(key, ".bin").with_name(
            c.path_for(key, ".bin").name + ".manifest.json"
        ).write_text("{broken")
        assert c.lookup(key, ".bin") is None
        c.store_bytes(key, ".bin", b"payload")
        other = cache_key({"k": 2})
        # a file copied in under another key's name: its manifest names another key
        c.path_for(other, ".bin").write_bytes(b"payload")
        c.path_for(other, ".bin").with_name(
            c.path_for(other, ".bin").name + ".manifest.json"
        ).write_text(manifest.read_text())
        assert c.lookup(other, ".bin") is None
        c.path_for(key, ".bin").with_name(c.path_for(key, ".bin").name + ".manifest.json").unlink()
        assert c.lookup(key, ".bin") is None  # no manifest: unverified, removed
    assert "recomputed" in caplog.text


def test_unwritable_cache_never_fails_the_run(tmp_path, caplog) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    c = Cache("x", blocker / "sub")
    with caplog.at_level("WARNING"):
        assert c.store_bytes(cache_key({}), ".bin", b"data") is None
    assert "not cached" in caplog.text or "not writable" in caplog.text


def test_file_lock_serialises(tmp_path) -> None:
    order: list[str] = []

    def hold() -> None:
        with file_lock(tmp_path / "l"):
            order.append("a-in")
            time.sleep(0.3)
            order.append("a-out")

    t = threading.Thread(target=hold)
    t.start()
    time.sleep(0.05)
    with file_lock(tmp_path / "l"):
        order.append("b-in")
    t.join()
    assert order == ["a-in", "a-out", "b-in"]
    with file_lock(tmp_path / "m"):  # a short timeout while someone else holds it
        t2 = threading.Thread(
            target=lambda: order.append("timeout" if _times_out(tmp_path / "m") else "got it")
        )
        t2.start()
        t2.join()
    assert order[-1] == "timeout"


def _times_out(path) -> bool:
    try:
        with file_lock(path, timeout_s=0.2):
            return False
    except TimeoutError:
        return True
