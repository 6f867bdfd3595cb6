"""Which prompts the primary encoder cannot read, decided from their letters and language.

The default encoder (multilingual USE v3) was trained on 16 languages written in Latin,
Cyrillic, Arabic, Han, kana, Hangul and Thai letters. A prompt mostly written in any other
script (Bengali, Devanagari, Telugu, Tamil, Greek, Hebrew, Ethiopic...) is embedded as
noise by it, and goes to the wide encoder instead (``service/encoding/e5.py``). So does
Vietnamese, the one language of the routes' users that USE lacks and that a letter shows:
its tone marks (Latin Extended Additional, horn letters) occur in no covered language.
A Latin-script language USE lacks and no letter shows (Swahili) is told by a language
identifier that ships its model (``py3langid``, about 0.06 ms per prompt), restricted to the
covered Latin languages plus those.

The rule is deterministic and cheap: the script test costs microseconds, and a prompt in a
covered non-Latin script (Chinese, Russian, Thai...) never reaches the language identifier.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
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
# Latin-script languages of the primary encoder, and those it lacks that take the wide path
# (measured: Swahili prompts of tests/data/multilingual_math.jsonl routed 0.58 with the
# primary encoder, 0.83 with the wide one; Indonesian 1.00 with the primary, so it stays).
COVERED_LATIN = ("en", "de", "es", "fr", "it", "nl", "pl", "pt", "tr", "id", "ms")
WIDE_LATIN = ("sw",)
# The identifier's probability a wide language needs: on the 9,957 Latin-script prompts of the
# shared prompt pool, 0.8 flagged 4 prompts as Swahili (multi-language rows), 0.5 flagged 10.
LANGUAGE_ID_PROBABILITY = 0.8
_identifier: Any = None
_identifier_lock = threading.Lock()


def covered(char: str) -> bool:
    """Whether ``char`` belongs to a script of the primary encoder's languages."""
    code = ord(char)
    position = bisect_right(_STARTS, code) - 1
    return position >= 0 and code <= COVERED_RANGES[position][1]


def needs_wide(text: str) -> bool:
    """Whether the prompt should be embedded by the wide encoder rather than the primary.

    True when most of its letters are in scripts the primary encoder was not trained on,
    when enough of them are Vietnamese tone-marked letters, or when a mostly Latin prompt is
    identified as a Latin-script language the primary encoder lacks.
    """
    sample = text[:SAMPLE_CHARS]
    if sample.isascii():
        return _wide_latin_language(sample)
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
        return False
    if uncovered >= UNCOVERED_SHARE * letters or vietnamese >= VIETNAMESE_SHARE * letters:
        return True
    return latin >= UNCOVERED_SHARE * letters and _wide_latin_language(sample)


def _wide_latin_language(sample: str) -> bool:
    """Whether a Latin-script prompt is in a language of ``WIDE_LATIN``."""
    if not any(char.isalpha() for char in sample[:LANGUAGE_ID_CHARS]):
        return False
    language, probability = _language_identifier().classify(sample[:LANGUAGE_ID_CHARS])
    return language in WIDE_LATIN and probability >= LANGUAGE_ID_PROBABILITY


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
            identifier.set_languages([*COVERED_LATIN, *WIDE_LATIN])
            _identifier = identifier
    return _identifier
