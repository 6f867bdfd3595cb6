"""Hashed word and character n-grams of a prompt: the lexical view the classifier adds to the embedding.

Why: a sentence embedding blurs the exact words that tell two tasks of one topic apart
("set an alarm" against "what alarms are set"), and it knows nothing of a route's own
vocabulary (product names, commands). A linear model over the prompt's words and character
n-grams keeps both. Character n-grams need no word splitting, so Chinese and Japanese
prompts, written without spaces, are covered too.

Features are hashed into a fixed number of buckets with CRC-32 (stable across processes,
unlike Python's ``hash``), counted once each, and L2-normalised: the same text always gives
the same vector, and a prompt costs a few hundred hash calls, no vocabulary lookup.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

BUCKETS = 1 << 15
CHAR_SIZES = (2, 3, 4)
# A long prompt's opening says what it asks; beyond this its n-grams add time, not signal.
MAX_CHARS = 600
# A writing system whose rows are mostly one route's gets no lexical say: its letters would
# stand for that route.
DOMINANT_SHARE = 0.75
# Japanese mixes kana with Han characters; this share of kana among the letters marks it.
KANA_SHARE = 0.1
_WORD = re.compile(r"\w+")
_SPACE = re.compile(r"\s+")


def _normalised(text: str) -> str:
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text[:MAX_CHARS]).lower()).strip()


def features(text: str, buckets: int = BUCKETS) -> np.ndarray:
    """The prompt's distinct hashed feature ids, sorted (an empty prompt has none)."""
    clean = _normalised(text)
    if not clean:
        return np.zeros(0, dtype=np.int64)
    words = _WORD.findall(clean)
    grams = {"w" + word for word in words}
    grams.update("b" + a + " " + b for a, b in itertools.pairwise(words))
    padded = f" {clean} "
    for size in CHAR_SIZES:
        grams.update("c" + padded[i : i + size] for i in range(len(padded) - size + 1))
    return np.array(sorted(set(bucket_ids(grams, buckets))), dtype=np.int64)


def bucket_ids(grams: Iterable[str], buckets: int) -> list[int]:
    """Each gram's bucket, in order: crc32, not ``hash``, which Python salts per process, and
    the buckets must be the same at build and at every start. One comprehension, not a call
    per gram: those calls were half the feature time of a short prompt (0.2 ms of it)."""
    return [zlib.crc32(gram.encode("utf-8")) % buckets for gram in grams]


def sparse_rows(ids: Sequence[np.ndarray], values: Sequence[np.ndarray], width: int) -> Any:
    """One SciPy CSR row per (bucket ids, values) pair: the build-time design matrix whose
    rows are exactly what the per-prompt scoring computes."""
    from scipy.sparse import csr_matrix

    lengths = np.array([len(row) for row in ids], dtype=np.int64)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    indices = np.concatenate(ids) if len(ids) else np.zeros(0, dtype=np.int64)
    data = np.concatenate(values) if len(values) else np.zeros(0, dtype=np.float32)
    return csr_matrix((data, indices, indptr), shape=(len(ids), width), dtype=np.float32)


def matrix(texts: Sequence[str], buckets: int = BUCKETS) -> Any:
    """Rows of L2-normalised binary features, as a SciPy CSR matrix (for fitting at build)."""
    rows = [features(text, buckets) for text in texts]
    values = [np.full(len(row), 1.0 / np.sqrt(max(len(row), 1)), np.float32) for row in rows]
    return sparse_rows(rows, values, buckets)


def scores(
    texts: Sequence[str],
    weights: np.ndarray,
    bias: np.ndarray | None = None,
    systems: tuple[str, ...] | None = None,
) -> np.ndarray:
    """Linear scores (n, columns) of ``weights`` (buckets, columns) over the texts' features,
    plus ``bias``.

    With ``systems`` (``covered_systems``), a prompt mostly written in another system is
    scored on what ``readable`` keeps of it, weighed as one part of the whole prompt (a few
    kept signs of a long prompt say little) and without ``bias``, the prior its letters
    would have come with.
    """
    out = np.zeros((len(texts), weights.shape[1]), dtype=np.float32)
    for row, text in enumerate(texts):
        ids = features(text, weights.shape[0])
        read = ids
        system = writing_system(text) if systems is not None else ""
        if system and systems is not None and system not in systems:
            read = features(readable(text, systems), weights.shape[0])
        elif bias is not None:
            out[row] = bias
        if len(ids):
            out[row] += weights[read].sum(axis=0) / np.sqrt(len(ids))
    return out


def writing_system(text: str) -> str:
    """The script most of the prompt's letters are written in, by its Unicode name ("LATIN",
    "CYRILLIC", "HANGUL", "CJK" for Han characters...), "KANA" for Japanese, whose kana mark
    it among Han characters, and "" for a prompt without letters."""
    sample = text[:MAX_CHARS]
    if sample.isascii():
        return "LATIN" if any(char.isalpha() for char in sample) else ""
    counts = Counter(_system(char) for char in sample if char.isalpha())
    if not counts:
        return ""
    kana = counts.pop("KANA", 0)
    if kana >= KANA_SHARE * (kana + sum(counts.values())):
        return "KANA"
    return counts.most_common(1)[0][0]


def readable(text: str, systems: tuple[str, ...]) -> str:
    """A prompt written in a system outside ``systems``, as a lexical model that knows only
    those reads it: its digits, symbols and the letters of known systems (a product or
    function name in Latin letters) stay; the rest, which would only say its language, goes."""
    return "".join(
        char if not _lettered(char) or _system(char) in systems else " "
        for char in text[:MAX_CHARS]
    )


def _lettered(char: str) -> bool:
    """A letter, or a mark written on one (the vowel signs of Indic scripts)."""
    return char.isalpha() or unicodedata.category(char).startswith("M")


def _system(letter: str) -> str:
    """The writing system of one letter, by the first word of its Unicode name."""
    system = unicodedata.name(letter, "?").split(" ", 1)[0]
    return "KANA" if system in ("HIRAGANA", "KATAKANA") else system


def covered_systems(texts: Sequence[str], labels: Sequence[int], n_routes: int) -> tuple[str, ...]:
    """The writing systems the lexical model may read: those whose in-scope rows are not
    mostly (``DOMINANT_SHARE``) one route's (labels at or above ``n_routes`` are "none").

    Why: the routes' rows in a language are often the few kinds of task its public sources
    hold (the shared prompt pool's Korean is small talk, its Hindi reading comprehension),
    and the lexical model then learns the letters as the task: Korean requests of every
    kind went to chitchat. The embedding, trained across languages, decides such prompts.
    """
    seen: dict[str, Counter[int]] = {}
    for text, label in zip(texts, labels, strict=True):
        if label < n_routes:
            seen.setdefault(writing_system(text), Counter())[label] += 1
    return tuple(
        sorted(
            system
            for system, routes in seen.items()
            if system and max(routes.values()) < DOMINANT_SHARE * sum(routes.values())
        )
    )
