"""Vectors of the texts earlier builds embedded, so a rebuild embeds only the new ones.

One file per encoder in ``index/``: ``embeddings-<model>-<identity hash>.npz`` holds the
sha256 of each clipped text, its vector and the encoder's identity (model, backend, graph,
embedding scheme, clipping...: ``BaseEncoder.vector_identity``). An encoder whose identity
changed gets a new file and the old one of the same model is deleted; each file is rewritten
at the end of a build with the texts of that build only, so it never outgrows the routes.

The cache only saves time: a file that cannot be read, or that does not match its encoder,
is ignored with a warning and rebuilt; a file that cannot be written leaves the build as it
is. Files are replaced atomically, and the index's commit point (``manifest.json``) does not
depend on them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from service.encoding.encoder import BaseEncoder

log = logging.getLogger("semroute")

PREFIX = "embeddings-"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cache_path(index_dir: Path, encoder: BaseEncoder) -> Path:
    """The cache file of this encoder: its model (readable) and a hash of its identity."""
    identity = json.dumps(encoder.vector_identity(), sort_keys=True)
    model = re.sub(r"[^a-z0-9]+", "-", encoder.model_id.lower()).strip("-")[-48:]
    return index_dir / f"{PREFIX}{model}-{_digest(identity)[:12]}.npz"


class EmbeddingCache:
    """Vectors by clipped text (``VectorCache``), filled from and saved to one file.

    ``get`` and ``put`` record the texts this build asked for: ``save`` keeps those only.
    """

    def __init__(self, path: Path, identity: dict[str, Any], dimension: int) -> None:
        self.path = path
        self.identity = json.dumps(identity, sort_keys=True)
        self.dimension = dimension
        self._vectors: dict[str, np.ndarray] = {}
        self._used: set[str] = set()
        self.hits = 0  # texts served from the file
        self.embedded = 0  # texts the encoder had to embed
        self._load()

    def __len__(self) -> int:
        return len(self._vectors)

    def _load(self) -> None:
        if not self.path.exists():
            return
        try:
            with np.load(self.path, allow_pickle=False) as data:
                identity = str(data["identity"])
                keys = data["keys"]
                vectors = data["vectors"]
            if identity != self.identity:
                raise ValueError("it was written by an encoder of another identity")
            if keys.ndim != 1 or vectors.shape != (len(keys), self.dimension):
                raise ValueError(f"keys {keys.shape} and vectors {vectors.shape} do not match")
            if vectors.dtype != np.float32 or not np.all(np.isfinite(vectors)):
                raise ValueError("its vectors are not finite float32")
            norms = np.linalg.norm(vectors, axis=1)
            if len(norms) and not np.allclose(norms, 1.0, atol=1e-3):
                raise ValueError("its vectors are not unit-norm")
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            log.warning("ignoring the embedding cache %s (%s); re-embedding", self.path, error)
            return
        for key, vector in zip(keys.tolist(), vectors, strict=True):
            vector.setflags(write=False)
            self._vectors[str(key)] = vector

    def get(self, key: str) -> np.ndarray | None:
        digest = _digest(key)
        self._used.add(digest)
        vector = self._vectors.get(digest)
        if vector is not None:
            self.hits += 1
        return vector

    def put(self, key: str, value: np.ndarray) -> None:
        digest = _digest(key)
        self._used.add(digest)
        self._vectors[digest] = value
        self.embedded += 1

    def save(self, prune: bool = True) -> None:
        """Write the cache atomically: with ``prune``, only the texts asked for since it was
        opened; without (a failed build), everything it holds. Never raises for I/O."""
        keys = sorted(self._used if prune else self._vectors.keys())
        keys = [key for key in keys if key in self._vectors]
        vectors = (
            np.stack([self._vectors[key] for key in keys])
            if keys
            else np.zeros((0, self.dimension), dtype=np.float32)
        )
        temp = self.path.parent / f".{self.path.name}.tmp"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with temp.open("wb") as handle:
                np.savez(
                    handle,
                    identity=np.array(self.identity),
                    keys=np.array(keys, dtype="U64"),
                    vectors=np.asarray(vectors, dtype=np.float32),
                )
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
            model = self.path.name.rsplit("-", 1)[0]
            # The same model under an older identity: same name but for its 12-digit hash
            # (a model whose name extends this one's has a longer file name).
            for other in self.path.parent.glob(f"{model}-*.npz"):
                if other != self.path and len(other.name) == len(self.path.name):
                    other.unlink(missing_ok=True)
        except OSError as error:
            temp.unlink(missing_ok=True)
            log.warning("could not write the embedding cache %s: %s", self.path, error)


class CachedEncoder:
    """An encoder seen through an ``EmbeddingCache``: ``encode`` embeds only texts the cache
    lacks, through the encoder's own ``encode_cached``."""

    def __init__(self, encoder: BaseEncoder, cache: EmbeddingCache) -> None:
        self.encoder = encoder
        self.cache = cache
        self.model_id = encoder.model_id
        self.dimension = encoder.dimension
        self.backend = encoder.backend
        self.graph = getattr(encoder, "graph", None)

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        return self.encoder.encode_cached(texts, batch_size, progress, cache=self.cache)


def summary(*encoders: object) -> dict[str, dict[str, int]]:
    """Per model, how many texts came from the cache and how many were embedded (for the
    manifest and the build's output)."""
    return {
        encoder.model_id: {"reused": encoder.cache.hits, "embedded": encoder.cache.embedded}
        for encoder in encoders
        if isinstance(encoder, CachedEncoder)
    }


@contextmanager
def cached_encoders(index_dir: Path, *encoders: object) -> Iterator[list[Any]]:
    """The encoders, each behind its cache file in ``index_dir`` (encoders that are not a
    ``BaseEncoder``, and None, are passed through). The caches are saved when the block
    ends: pruned to this build's texts after success, whole after a failure, so an
    interrupted build keeps what it embedded."""
    caches: list[EmbeddingCache] = []
    wrapped: list[Any] = []
    for encoder in encoders:
        if isinstance(encoder, BaseEncoder):
            cache = EmbeddingCache(
                cache_path(index_dir, encoder), encoder.vector_identity(), encoder.dimension
            )
            caches.append(cache)
            wrapped.append(CachedEncoder(encoder, cache))
        else:
            wrapped.append(encoder)
    try:
        yield wrapped
    except BaseException:
        for cache in caches:
            cache.save(prune=False)
        raise
    for cache in caches:
        cache.save(prune=True)
