"""Which prompts the primary encoder cannot read, decided from their letters and language.

The default encoder (multilingual USE v3) was trained on 16 languages written in Latin,
Cyrillic, Arabic, Han, kana, Hangul and Thai letters. A prompt mostly written in any other
script (Bengali, Devanagari, Telugu, Tamil, Greek, Hebrew, Ethiopic...) is embedded as
noise by it, and goes to the wide encoder instead (``service/encoding/e5.py``). So does
Vietnamese, the one language of the routes' users that USE lacks and that a letter shows:
its tone marks (Latin Extended Additional, horn letters) occur in no covered language.
A Latin-script language USE lacks and no letter shows (Czech, Romanian, Hungarian, Swahili,
Swedish...) is told by a language identifier that ships its model (``py3langid``, about
0.2 ms per prompt), restricted to the covered Latin languages, Russian and those; the primary
encoder still reads its letters, so such a prompt is read by both (``Reading.BOTH``).

The rule is deterministic and cheap: the script test costs microseconds, and a prompt in a
covered non-Latin script (Chinese, Russian, Thai...) never reaches the language identifier.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from enum import Enum
from typing import Any

# Code point ranges of the scripts the primary encoder was trained on (start, end inclusive).
COVERED_RANGES: tuple[tuple[int, int], ...] = (
    (0x0000, 0x024F),  # Basic Latin to Latin Extended-B
    (0x0250, 0x02FF),  # IPA extensions, spacing modifiers
    (0x0400, 0x052F),  # Cyrillic (ru)
    (0x0600, 0x06FF),  # Arabic (ar)
    (0x0750, 0x077F),  # Arabic supplement
    (0x0E00, 0x0E7F),  # Thai (th)
    (0x1100, 0x11FF),  # Hangul jamo (ko)
    (0x1E00, 0x1EFF),  # Latin Extended Additional (Vietnamese letters are counted apart)
    (0x2E80, 0x2FDF),  # CJK radicals
    (0x3000, 0x30FF),  # CJK punctuation, hiragana, katakana (ja)
    (0x3100, 0x318F),  # Bopomofo (zh-tw), Hangul compatibility jamo
    (0x31F0, 0x31FF),  # katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs (zh, ja)
    (0xAC00, 0xD7AF),  # Hangul syllables (ko)
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFB50, 0xFDFF),  # Arabic presentation forms A
    (0xFE70, 0xFEFF),  # Arabic presentation forms B
    (0xFF00, 0xFFEF),  # half- and full-width forms
    (0x20000, 0x2FFFF),  # CJK extensions B and later
)
_STARTS = [start for start, _ in COVERED_RANGES]
# Letters only Vietnamese uses among the covered scripts: the horn letters and the
# tone-marked vowels of Latin Extended Additional (U+1EA0-U+1EF9).
_VIETNAMESE = frozenset("ơƠưƯ") | frozenset(chr(c) for c in range(0x1EA0, 0x1EFA))
# A prompt takes the wide path when at least this share of its letters is uncovered
# ("mostly written in"): a foreign name or a quoted word does not move an English prompt.
UNCOVERED_SHARE = 0.5
# Vietnamese: tone-marked letters are a minority of its letters (about one in six in the
# evaluation prompts, tests/data/multilingual_math.jsonl); one in twenty marks the language.
VIETNAMESE_SHARE = 0.05
# Only the head of a long prompt is read: the language of a prompt shows in its first lines.
SAMPLE_CHARS = 2000
LANGUAGE_ID_CHARS = 500
# Latin-script languages of the primary encoder, and those it lacks that take the wide path:
# the Latin-script languages of the wide encoder's training (XLM-R's CC-100) that the
# identifier knows. Measured: Swahili prompts of tests/data/multilingual_math.jsonl routed
# 0.58 with the primary encoder, 0.83 with the wide one; Indonesian 1.00 with the primary,
# so it stays; the shared pool's Romanian, Hungarian, Albanian, Croatian and Lithuanian
# prompts: see README.md, "Languages the default encoder cannot read".
COVERED_LATIN = ("en", "de", "es", "fr", "it", "nl", "pl", "pt", "tr", "id", "ms")
WIDE_LATIN = (
    *("cs", "sk", "sl", "hr", "bs", "sr", "ro", "hu", "sq", "lt", "lv", "et", "fi"),
    *("sv", "da", "no", "nn", "is", "ca", "gl", "eu", "cy", "ga", "af", "tl", "az"),
    *("uz", "sw", "ha", "so", "xh", "zu", "yo", "mg"),
)
# Russian joins the identifier's languages so that Cyrillic quoted in a mostly Latin prompt is
# put down to a covered language, not to Serbian or Uzbek.
IDENTIFIER_EXTRA = ("ru",)
# The probability the wide languages together need (closely related ones, such as Croatian,
# Bosnian and Serbian, share it). On the shared prompt pool's 6,896 English prompts, 0.9
# sends one to the wide path (a romanised Sanskrit lyric), and none of its 1,409 Chinese ones.
LANGUAGE_ID_PROBABILITY = 0.9
# Only a prompt written in Latin letters, with enough of them to tell a language, is asked:
# Chinese problems full of LaTeX and English formulae ("Find $|9i-12|$") are not.
LATIN_SHARE = 0.9
MIN_LATIN_LETTERS = 20
_identifier: Any = None
_identifier_lock = threading.Lock()


def covered(char: str) -> bool:
    """Whether ``char`` belongs to a script of the primary encoder's languages."""
    code = ord(char)
    position = bisect_right(_STARTS, code) - 1
    return position >= 0 and code <= COVERED_RANGES[position][1]


class Reading(Enum):
    """Which encoders read a prompt's route."""

    PRIMARY = "primary"
    # A script the primary encoder was not trained on: its vector is noise, the wide one decides.
    WIDE = "wide"
    # A Latin-script language the primary encoder lacks: it still reads the letters (names,
    # numbers, cognates of the languages it knows), so both encoders' route probabilities count.
    BOTH = "both"


def needs_wide(text: str) -> bool:
    """Whether the prompt is embedded by the wide encoder too (``reading`` is not PRIMARY)."""
    return reading(text) is not Reading.PRIMARY


def reading(text: str) -> Reading:
    """Which encoders route the prompt.

    WIDE when most of its letters are in scripts the primary encoder was not trained on, or
    enough of them are Vietnamese tone-marked letters; BOTH when a prompt in Latin letters is
    identified as a Latin-script language the primary encoder lacks; else PRIMARY.
    """
    sample = text[:SAMPLE_CHARS]
    if sample.isascii():
        letters = sum(char.isalpha() for char in sample)
        wide_latin = letters >= MIN_LATIN_LETTERS and _wide_latin_language(sample)
        return Reading.BOTH if wide_latin else Reading.PRIMARY
    letters = uncovered = vietnamese = latin = 0
    for char in sample:
        if not char.isalpha():
            continue
        letters += 1
        if char in _VIETNAMESE:
            vietnamese += 1
        elif char < "\u0250":
            latin += 1
        elif not covered(char):
            uncovered += 1
    if letters == 0:
        return Reading.PRIMARY
    if uncovered >= UNCOVERED_SHARE * letters or vietnamese >= VIETNAMESE_SHARE * letters:
        return Reading.WIDE
    wide_latin = (
        latin >= LATIN_SHARE * letters
        and latin >= MIN_LATIN_LETTERS
        and _wide_latin_language(sample)
    )
    return Reading.BOTH if wide_latin else Reading.PRIMARY


def _wide_latin_language(sample: str) -> bool:
    """Whether a Latin-script prompt is in a language of ``WIDE_LATIN``."""
    if not any(char.isalpha() for char in sample[:LANGUAGE_ID_CHARS]):
        return False
    ranked = _language_identifier().rank(sample[:LANGUAGE_ID_CHARS])
    wide = sum(probability for language, probability in ranked if language in WIDE_LATIN)
    return wide >= LANGUAGE_ID_PROBABILITY


def load_language_identifier() -> None:
    """Load the language identifier now, so that its second of loading falls on the thread that
    loads the encoders at start-up, not on the first Latin-script prompt (the warm-up)."""
    _language_identifier()


def _language_identifier() -> Any:
    """py3langid's identifier over the Latin languages that matter here, loaded once (1 s)."""
    global _identifier
    if _identifier is not None:
        return _identifier
    with _identifier_lock:
        if _identifier is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
            identifier.set_languages([*COVERED_LATIN, *IDENTIFIER_EXTRA, *WIDE_LATIN])
            _identifier = identifier
    return _identifier
