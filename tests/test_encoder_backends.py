"""The ONNX Runtime encoder: same interface, same emphasis and pooling, vectors that agree
with the PyTorch encoder's closely enough to share an index."""

from pathlib import Path

import numpy as np
import pytest
from conftest import CODING_PROMPT, COOKING_PROMPT

from service.config.routes import load_route_set
from service.config.settings import MINILM_MODEL, MULTILINGUAL_MODEL
from service.encoding.encoder import (
    Encoder,
    EncoderError,
    MultilingualEncoder,
    OnnxEncoder,
    load_encoder,
)
from service.index.store import build_index, load_index
from service.routing.router import Router
from service.routing.types import RouteRequest

TEXTS = [
    "write a python function that parses ISO dates",
    "Summarise this review in one line: the battery lasts two days and the screen is sharp.",
    "what's the capital of Australia?",
    "hi there, how are you doing today?",
    "x" * 5000,
]


@pytest.fixture(scope="module")
def onnx_encoder() -> OnnxEncoder:
    return OnnxEncoder()


def test_onnx_encoder_has_the_encoder_interface(onnx_encoder: OnnxEncoder) -> None:
    vectors = onnx_encoder.encode(TEXTS)

    assert onnx_encoder.model_id == MINILM_MODEL
    assert onnx_encoder.backend == "onnx"
    assert vectors.shape == (len(TEXTS), onnx_encoder.dimension) == (len(TEXTS), 384)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert onnx_encoder.encode([]).shape == (0, 384)


def test_onnx_vectors_agree_with_the_torch_encoder(
    onnx_encoder: OnnxEncoder, minilm_encoder: Encoder
) -> None:
    shipped = OnnxEncoder(cache_size=0, graph="shipped")
    reference = minilm_encoder.encode(TEXTS)

    float32 = np.sum(shipped.encode(TEXTS) * reference, axis=1)
    int8 = np.sum(onnx_encoder.encode(TEXTS) * reference, axis=1)

    assert onnx_encoder.graph == "int8"  # the default
    assert float32.min() > 0.99
    assert int8.mean() > 0.98 and int8.min() > 0.95


def test_onnx_encode_one_is_cached(onnx_encoder: OnnxEncoder) -> None:
    first = onnx_encoder.encode_one("a prompt for the onnx cache")

    assert onnx_encoder.encode_one("a prompt for the onnx cache") is first
    assert not first.flags.writeable


def test_onnx_backend_refuses_other_models() -> None:
    with pytest.raises(EncoderError, match="SEMROUTE_ENCODER_BACKEND=torch"):
        OnnxEncoder("BAAI/bge-small-en-v1.5")


def test_unknown_backend_is_an_encoder_error() -> None:
    with pytest.raises(EncoderError, match="unknown encoder backend"):
        load_encoder(backend="tensorflow")


def test_load_encoder_picks_the_configured_backend(onnx_encoder: OnnxEncoder) -> None:
    assert isinstance(load_encoder(MINILM_MODEL, backend="onnx", cache_size=0), OnnxEncoder)
    assert isinstance(load_encoder(backend="onnx", cache_size=0), MultilingualEncoder)
    assert isinstance(load_encoder(cache_size=0), MultilingualEncoder)  # the default


def test_the_multilingual_model_has_no_torch_backend() -> None:
    with pytest.raises(EncoderError, match="onnx backend only"):
        load_encoder(MULTILINGUAL_MODEL, backend="torch")


async def test_an_index_built_with_torch_routes_the_same_with_onnx(
    small_routes: Path, tmp_path: Path, onnx_encoder: OnnxEncoder, minilm_encoder: Encoder
) -> None:
    route_set = load_route_set(small_routes)
    build_index(route_set, minilm_encoder, tmp_path / "index")
    router = Router(route_set, load_index(tmp_path / "index"), onnx_encoder)
    try:
        coding = await router.decide(RouteRequest(prompt=CODING_PROMPT, tiebreak=False))
        cooking = await router.decide(RouteRequest(prompt=COOKING_PROMPT, tiebreak=False))
    finally:
        router.close()

    assert coding.route == "coding"
    assert cooking.route == "cooking"
