"""Which encoders read a prompt, decided from its letters and language.

The default encoder (multilingual USE v3) was trained on 16 languages written in Latin,
Cyrillic, Arabic, Han, kana, Hangul and Thai letters. A prompt mostly written in any other
script (Bengali, Devanagari, Telugu, Tamil, Greek, Hebrew, Ethiopic...) is embedded as
noise by it, and goes to the wide encoder instead (``service/encoding/e5.py``). So does
Vietnamese, the one language of the routes' users that USE lacks and that a letter shows:
its tone marks (Latin Extended Additional, horn letters) occur in no covered language.

A prompt in Latin letters that a language identifier which ships its model (``py3langid``,
about 0.2 ms per prompt) puts down to a Latin-script language USE lacks (Czech, Romanian,
Swedish, Swahili...) is read by both encoders (``Reading.BOTH``): USE still reads its letters,
and the two classifiers' route probabilities are averaged.

Every other prompt not in English (mostly written in the covered non-Latin scripts, or in
Latin letters the identifier does not put down to English) is ``Reading.CHECKED``: the
primary classifier decides, and the wide encoder is asked for a second opinion when that
decision is unsure (``routing.semantic.SECOND_OPINION_BELOW``). The routes' training rows are
mostly English, and a language's few rows lean to a route or two (the pool's Korean is small
talk, its Hindi reading comprehension); the two classifiers learnt different things from them,
and averaged they route such prompts by their task more often than either alone (README,
"Languages the default encoder cannot read").

The rule is deterministic and cheap: the script test costs microseconds, and the language
identifier only sees prompts in Latin letters with enough of them to tell a language.
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
# The languages the identifier chooses among: the Latin-script languages of the primary encoder
# and of the wide encoder's training (XLM-R's CC-100), and Russian, so that Cyrillic quoted in a
# mostly Latin prompt is put down to a covered language, not to Serbian or Uzbek.
COVERED_LATIN = ("en", "de", "es", "fr", "it", "nl", "pl", "pt", "tr", "id", "ms")
WIDE_LATIN = (
    *("cs", "sk", "sl", "hr", "bs", "sr", "ro", "hu", "sq", "lt", "lv", "et", "fi"),
    *("sv", "da", "no", "nn", "is", "ca", "gl", "eu", "cy", "ga", "af", "tl", "az"),
    *("uz", "sw", "ha", "so", "xh", "zu", "yo", "mg"),
)
IDENTIFIER_EXTRA = ("ru",)
# The probability the languages of WIDE_LATIN together need for BOTH, and the languages other
# than English for CHECKED. On the shared prompt pool's 6,896 English prompts, 0.9 sends one to
# BOTH (a romanised Sanskrit lyric) and 13 to CHECKED (most of them Python stubs); 1,692 of
# its 1,732 prompts in other Latin-script languages are one of the two (the rest are too
# short to tell).
LANGUAGE_ID_PROBABILITY = 0.9
# A prompt whose letters are at least this share in the covered non-Latin scripts is in a
# language other than English; below it, a prompt in Latin letters with a quoted phrase
# ("For the given proverb, give a Russian one: ...") is left to the identifier.
NON_LATIN_SHARE = 0.5
# Only a prompt with enough Latin letters to tell a language is asked.
MIN_LATIN_LETTERS = 20
# A prompt is put down to a Latin-script language USE lacks only when nearly all its letters
# are Latin: the identifier knows no Chinese, and reads the LaTeX and English formulae of a
# Chinese problem ("已知 $\boldsymbol{a}$ ...") as some Latin-script language.
LATIN_SHARE = 0.9
_identifier: Any = None
_identifier_lock = threading.Lock()


def covered(char: str) -> bool:
    """Whether ``char`` belongs to a script of the primary encoder's languages."""
    code = ord(char)
    position = bisect_right(_STARTS, code) - 1
    return position >= 0 and code <= COVERED_RANGES[position][1]


class Reading(Enum):
    """Which encoders read a prompt's route."""

    # English, or too short to tell: the primary encoder, on the fast path.
    PRIMARY = "primary"
    # A script the primary encoder was not trained on: its vector is noise, the wide one decides.
    WIDE = "wide"
    # A Latin-script language the primary encoder lacks: it still reads the letters (names,
    # numbers, cognates of the languages it knows), so both encoders' route probabilities count.
    BOTH = "both"
    # Another language the primary encoder knows: its classifier decides, with the wide
    # encoder's second opinion when the decision is unsure.
    CHECKED = "checked"


def reading(text: str) -> Reading:
    """Which encoders route the prompt.

    WIDE when most of its letters are in scripts the primary encoder was not trained on, or
    enough of them are Vietnamese tone-marked letters; BOTH when it is in a Latin-script
    language the primary encoder lacks; CHECKED when it is in another language than English;
    else PRIMARY.
    """
    sample = text[:SAMPLE_CHARS]
    if sample.isascii():
        letters = sum(char.isalpha() for char in sample)
        return _latin_reading(sample) if letters >= MIN_LATIN_LETTERS else Reading.PRIMARY
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
    if letters - latin - uncovered >= NON_LATIN_SHARE * letters:
        return Reading.CHECKED
    if latin < MIN_LATIN_LETTERS:
        return Reading.PRIMARY
    return _latin_reading(sample, mostly_latin=latin >= LATIN_SHARE * letters)


def _latin_reading(sample: str, mostly_latin: bool = True) -> Reading:
    """BOTH, CHECKED or PRIMARY for a prompt in Latin letters, by its language. A prompt
    whose letters are not ``mostly_latin`` is never BOTH: a Chinese problem full of LaTeX is
    no Latin-script language, whatever the identifier says."""
    if not any(char.isalpha() for char in sample[:LANGUAGE_ID_CHARS]):
        return Reading.PRIMARY
    ranked = _language_identifier().rank(sample[:LANGUAGE_ID_CHARS])
    if sum(p for language, p in ranked if language in WIDE_LATIN) >= LANGUAGE_ID_PROBABILITY:
        return Reading.BOTH if mostly_latin else Reading.CHECKED
    if sum(p for language, p in ranked if language != "en") >= LANGUAGE_ID_PROBABILITY:
        return Reading.CHECKED
    return Reading.PRIMARY


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
