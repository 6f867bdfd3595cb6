"""Keyboard mash by its letters: is a prompt's spelling less likely than random typing?

The classifier's "no route" class learns junk from the embeddings of the calibration file's
mash rows, yet the embedding of held keys ("eeeeeee uuuuu") or random letters can sit near
real prompts.
Spelling tells them apart without the encoder: a character-bigram model of the route
utterances (the languages the routes were written in) gives every letter pair a log
probability, and a prompt whose Latin letters score no better than letters typed uniformly at
random is mash. The threshold is that random-typing baseline, computed from the same table,
so nothing is tuned by hand; a letter typed three times in a row is scored by how often the
utterances do that. A prompt of held keys only ("jjjjjjj kkkk") is mash without a table.

Only Latin letters are judged: a keyboard masher types ASCII, and a prompt in another script
(Chinese, Thai without spaces, Arabic, Hindi...) is never called mash here (the classifier
still sees it). Very short prompts ("lol", "idk", "wtf") are left to the classifier as well:
three letters say too little. Judging a prompt costs 10-20 µs (``scripts/bench_junk.py``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

LETTER_RUN = re.compile(r"[A-Za-z]+")
START, END = 26, 27  # word boundaries in the bigram table
# Fewer Latin letters than this and the spelling is not judged ("lol", "idk", "wtf", "ok").
MIN_LETTERS = 5
# Held keys are judged from this many letters ("wwww"; "zzz" is left alone).
HELD_LETTERS = 4
# Share of a prompt's letters that must be ASCII for its spelling to be judged.
MIN_ASCII_SHARE = 0.9
# Length of the words of the random typing the threshold is computed for.
RANDOM_WORD = 5
# Longer prompts are not judged: mash is short, and the cost stays bounded.
MAX_CHARS = 300


@dataclass(frozen=True)
class Spelling:
    """Log probabilities of letter pairs (and of a third identical letter) in the routes' text."""

    log_pair: np.ndarray  # (28, 28): a-z, START, END; log P(next | previous)
    log_repeat: float  # log P(a letter again | the same letter twice)
    random_baseline: float  # mean log probability of a letter pair typed uniformly at random

    @classmethod
    def fit(cls, texts: Iterable[str]) -> Spelling:
        """Count letter pairs in ``texts`` (add-one smoothed, so no pair is impossible)."""
        # Every text as one array of codes: a-z as 0-25, anything else a word break.
        joined = "\n".join(texts).lower().encode("ascii", "replace")
        raw = np.frombuffer(joined, dtype=np.uint8).astype(np.int64) - 97
        is_letter = (raw >= 0) & (raw < 26)
        codes = np.where(is_letter, raw, -1)
        before, after = codes[:-1], codes[1:]
        left = np.where(before >= 0, before, START)  # a break before a letter: its word start
        right = np.where(after >= 0, after, END)
        keep = (before >= 0) | (after >= 0)  # a pair of breaks is no pair
        counts = 1.0 + np.bincount(left[keep] * 28 + right[keep], minlength=28 * 28)
        counts = counts.reshape(28, 28)
        doubles_at = (before >= 0) & (before == after)
        doubles = 1 + int(doubles_at.sum())
        triples = int((doubles_at[:-1] & doubles_at[1:]).sum())
        log_pair = np.log(counts / counts.sum(axis=1, keepdims=True))
        # Random typing: words of RANDOM_WORD uniform letters, each pair's mean log probability.
        start, end = log_pair[START, :26].mean(), log_pair[:26, END].mean()
        inner = log_pair[:26, :26].mean() * (RANDOM_WORD - 1)
        random_baseline = float((start + inner + end) / (RANDOM_WORD + 1))
        return cls(log_pair, math.log((triples + 1) / (doubles + 2)), random_baseline)

    def score(self, text: str) -> float | None:
        """Mean log probability of the prompt's letter pairs; None when it is not judged."""
        if len(text) > MAX_CHARS:
            return None
        words = LETTER_RUN.findall(text.lower())
        ascii_letters = sum(len(word) for word in words)
        if ascii_letters < MIN_ASCII_SHARE * sum(c.isalpha() for c in text):
            return None
        if ascii_letters < MIN_LETTERS:
            return None
        table = self.log_pair
        total, pairs = 0.0, 0
        for word in words:
            previous, before = START, -1
            for char in word:
                code = ord(char) - 97
                total += self.log_repeat if code == previous == before else table[previous, code]
                before, previous = previous, code
            total += table[previous, END]
            pairs += len(word) + 1
        return total / pairs

    def is_mash(self, text: str) -> bool:
        """Whether the prompt is held keys only, or spelt no better than random typing."""
        if held_keys(text):
            return True
        score = self.score(text)
        return score is not None and score < self.random_baseline


def held_keys(text: str) -> bool:
    """Whether the prompt's words are all one key held down ("wwww", "jjjjjjj kkkk").

    Their letter pairs look like the doubled letters of real words, and how rarely a letter
    comes three times in a row is poorly counted from a few utterances; no language writes
    a prompt this way, so it needs no table. "zzz" alone (three letters) is left alone.
    """
    if len(text) > MAX_CHARS:
        return False
    words = LETTER_RUN.findall(text)
    letters = sum(len(word) for word in words)
    return (
        letters >= HELD_LETTERS
        and letters >= MIN_ASCII_SHARE * sum(c.isalpha() for c in text)
        and all(len(word) >= 3 and len(set(word.lower())) == 1 for word in words)
    )
