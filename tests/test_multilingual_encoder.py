"""The multilingual default encoder: a pinned graph, unit rows, tasks that match across
languages, vectors that do not depend on their batch, and indexes tied to their encoder."""

from pathlib import Path

import numpy as np
import pytest

from service.config.routes import load_route_set
from service.config.settings import MINILM_MODEL, MULTILINGUAL_MODEL, Settings
from service.encoding import encoder as encoder_module
from service.encoding.encoder import BaseEncoder, EncoderError, MultilingualEncoder
from service.index.store import IndexStaleError, check_index


def test_the_default_model_is_the_multilingual_one(encoder: BaseEncoder) -> None:
    assert Settings().embedding_model == MULTILINGUAL_MODEL
    assert isinstance(encoder, MultilingualEncoder)
    assert encoder.model_id == MULTILINGUAL_MODEL


def test_rows_are_unit_float32_of_the_graph_dimension(encoder: BaseEncoder) -> None:
    vectors = encoder.encode(["write a poem", "写一首诗", "x" * 20_000])

    assert vectors.shape == (3, 512) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert encoder.encode([]).shape == (0, 512)


def test_a_request_is_nearer_its_translation_than_another_task_in_its_own_language(
    encoder: BaseEncoder,
) -> None:
    english, german, chinese, other = encoder.encode(
        [
            "write a short poem about the sea in winter",
            "Schreib ein kurzes Gedicht über das Meer im Winter",
            "写一首关于冬天大海的短诗",
            "how many hours are there in three weeks",
        ]
    )

    assert english @ german > english @ other
    assert english @ chinese > english @ other


def test_a_prompt_gets_the_same_vector_alone_and_among_others(encoder: BaseEncoder) -> None:
    prompt = "Resuelve la ecuación x² - 5x + 6 = 0."
    alone = encoder.encode([prompt])[0]
    batched = encoder.encode(["hello", "a much longer prompt " * 20, prompt, "bye"])[2]

    np.testing.assert_array_equal(alone, batched)


def test_a_long_prompt_read_on_every_core_gets_the_vector_it_gets_in_a_batch(
    encoder: BaseEncoder,
) -> None:
    # Alone, a long prompt runs on the session with one thread per core; in a batch, on a
    # single-threaded one. The index was built the second way, so the two must agree.
    prompt = "Summarise these notes in three bullet points: " + "the rollout slipped a week. " * 40
    assert len(prompt) >= encoder_module.USE_LONG_CHARS
    alone = encoder.encode([prompt])[0]
    batched = encoder.encode(["hello", "a much longer prompt " * 20, prompt, "bye"])[2]

    np.testing.assert_allclose(alone, batched, atol=1e-5)


def test_a_graph_that_does_not_match_its_pinned_sha256_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(encoder_module, "USE_MODEL_SHA256", "0" * 64)

    with pytest.raises(EncoderError, match="pinned sha256"):
        MultilingualEncoder(cache_size=0)


def test_an_index_built_by_one_encoder_is_never_served_by_another(
    small_routes: Path, small_index: Path
) -> None:
    route_set = load_route_set(small_routes)
    assert check_index(small_index, route_set, MULTILINGUAL_MODEL)

    with pytest.raises(IndexStaleError, match=MULTILINGUAL_MODEL):
        check_index(small_index, route_set, MINILM_MODEL)
