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
from collections.abc import Sequence
from typing import Any

import numpy as np

BUCKETS = 1 << 15
CHAR_SIZES = (2, 3, 4)
# A long prompt's opening says what it asks; beyond this its n-grams add time, not signal.
MAX_CHARS = 600
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
    ids = {bucket(gram, buckets) for gram in grams}
    return np.array(sorted(ids), dtype=np.int64)


def bucket(gram: str, buckets: int) -> int:
    """The gram's bucket: crc32, not ``hash``, which Python salts per process, and the
    buckets must be the same at build and at every start."""
    return zlib.crc32(gram.encode("utf-8")) % buckets


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


def scores(texts: Sequence[str], weights: np.ndarray) -> np.ndarray:
    """Linear scores (n, columns) of ``weights`` (buckets, columns) over the texts' features."""
    out = np.zeros((len(texts), weights.shape[1]), dtype=np.float32)
    for row, text in enumerate(texts):
        ids = features(text, weights.shape[0])
        if len(ids):
            out[row] = weights[ids].sum(axis=0) / np.sqrt(len(ids))
    return out
