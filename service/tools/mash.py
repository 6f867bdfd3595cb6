"""Generated keyboard mash for measuring junk detection (tests and ``scripts/bench_junk.py``).

Kinds people type to try a box: keyboard walks along a row (either way), random letters,
held keys, random letters with digits, mixed-case random letters, and letters with digits
and punctuation. Deliberately not the generator of the calibration file's mash rows
(``scripts/make_route_data.py``), so what the classifier was trained on is not what it is
measured with.
"""

from __future__ import annotations

import random
import string

KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
KINDS = ("walk", "letters", "held", "letters+digits", "mixed-case", "letters+digits+punct")
_PUNCT = ",./;'[]!?"


def _word(kind: str, rng: random.Random) -> str:
    low = string.ascii_lowercase
    length = rng.randint(3, 10)
    if kind == "walk":
        row = rng.choice(KEYBOARD_ROWS)
        start = rng.randrange(len(row) - 2)
        walk = row[start : start + rng.randint(3, len(row) - start)]
        return walk[::-1] if rng.random() < 0.3 else walk
    if kind == "held":
        return rng.choice(low) * length
    alphabet = {
        "letters": low,
        "letters+digits": low + string.digits,
        "mixed-case": string.ascii_letters,
        "letters+digits+punct": low + string.digits + _PUNCT,
    }[kind]
    return "".join(rng.choice(alphabet) for _ in range(length))


def keyboard_mash(count: int, seed: int = 7) -> list[tuple[str, str]]:
    """``count`` (kind, text) pairs, one to four words of one kind each, kinds in turn."""
    rng = random.Random(seed)
    out = []
    for number in range(count):
        kind = KINDS[number % len(KINDS)]
        out.append((kind, " ".join(_word(kind, rng) for _ in range(rng.randint(1, 4)))))
    return out
