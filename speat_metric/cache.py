"""On-disk cache of per-layer clip embeddings, so a re-run makes no model forward pass.

An entry is the frame-pooled (layers, dim) array of one clip under one encoder. Its key covers everything that
changes the array: the model description (name, revision, weight hash, adapter settings), the frame pooling, the
audio settings, the stimulus content hash and the package version. Layer pooling is not part of the key: every
layer choice (mean over layers, one layer, per layer) is derived from the same cached array.

Layout: ``<root>/<encoder key>/<stimulus sha256>.npz``, each file holding the array, its key and a SHA-256 of the
array's bytes. Files are written atomically; a file that fails to load, whose key differs or whose checksum does not
match is logged, removed and recomputed, never used.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from speat_metric import __version__
from speat_metric.files import atomic_open

logger = logging.getLogger(__name__)


def default_cache_root() -> Path:
    """``$SPEAT_CACHE/embeddings`` if set, else ``<Hugging Face home>/speat/embeddings``."""
    if os.environ.get("SPEAT_CACHE"):
        return Path(os.environ["SPEAT_CACHE"]) / "embeddings"
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "speat" / "embeddings"


def encoder_key(settings: Mapping[str, Any]) -> str:
    """A stable hash of everything about the encoder and pooling that shapes a cached array."""
    canonical = json.dumps({**settings, "speat_version": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class EmbeddingCache:
    """Per-clip embedding arrays for one encoder configuration, under `root` (see `default_cache_root`); `settings`
    (the JSON-ready encoder, frame pooling and audio settings) are hashed into the key."""

    def __init__(self, root: str | Path, settings: Mapping[str, Any]) -> None:
        self.settings = dict(settings)
        self.key = encoder_key(self.settings)
        self.directory = Path(root) / self.key

    def path(self, stimulus_sha256: str) -> Path:
        return self.directory / f"{stimulus_sha256}.npz"

    def load(self, stimulus_sha256: str) -> np.ndarray | None:
        """The cached array, or None when absent or unusable (an unusable file is removed)."""
        path = self.path(stimulus_sha256)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as stored:
                array, key, checksum = stored["embedding"], str(stored["key"]), str(stored["checksum"])
        except Exception as error:  # a truncated or foreign file: any failure to read means "recompute"
            logger.warning("embedding cache file %s is unreadable (%s); recomputing it", path, error)
            path.unlink(missing_ok=True)
            return None
        if key != self._entry_key(stimulus_sha256) or checksum != _checksum(array):
            logger.warning("embedding cache file %s does not match its key or checksum; recomputing it", path)
            path.unlink(missing_ok=True)
            return None
        return array

    def store(self, stimulus_sha256: str, embedding: np.ndarray) -> None:
        array = np.ascontiguousarray(embedding, dtype=np.float32)
        buffer = io.BytesIO()
        np.savez(buffer, embedding=array, key=np.array(self._entry_key(stimulus_sha256)),
                 checksum=np.array(_checksum(array)))
        with atomic_open(self.path(stimulus_sha256), "wb") as file:
            file.write(buffer.getvalue())

    def _entry_key(self, stimulus_sha256: str) -> str:
        return f"{self.key}/{stimulus_sha256}"


def _checksum(array: np.ndarray) -> str:
    digest = hashlib.sha256(f"{array.dtype}:{array.shape};".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()
