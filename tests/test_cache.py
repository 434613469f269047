"""The embedding cache: keys, integrity checks, atomic files."""

import numpy as np

from speat_metric.cache import EmbeddingCache, encoder_key


def test_round_trip_and_keying(tmp_path):
    cache = EmbeddingCache(tmp_path, {"model": "m", "revision": "a"})
    array = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    assert cache.load("abc") is None
    cache.store("abc", array)
    np.testing.assert_array_equal(cache.load("abc"), array)
    assert EmbeddingCache(tmp_path, {"model": "m", "revision": "b"}).load("abc") is None
    assert encoder_key({"b": 1, "a": 2}) == encoder_key({"a": 2, "b": 1})


def test_corrupted_file_is_detected_and_removed(tmp_path, caplog):
    cache = EmbeddingCache(tmp_path, {"model": "m"})
    cache.store("abc", np.ones((2, 2), dtype=np.float32))
    path = cache.path("abc")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert cache.load("abc") is None
    assert not path.exists()
    assert "recomputing" in caplog.text


def test_file_under_another_key_is_not_used(tmp_path):
    cache = EmbeddingCache(tmp_path, {"model": "m"})
    cache.store("abc", np.ones((2, 2), dtype=np.float32))
    cache.path("abc").rename(cache.path("def"))  # right file format, wrong stimulus
    assert cache.load("def") is None


def test_truncated_file_is_detected(tmp_path):
    cache = EmbeddingCache(tmp_path, {"model": "m"})
    cache.store("abc", np.ones((50, 50), dtype=np.float32))
    path = cache.path("abc")
    path.write_bytes(path.read_bytes()[:100])
    assert cache.load("abc") is None
