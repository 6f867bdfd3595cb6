"""The build's embedding cache: a rebuild embeds only new texts, and a broken cache only
costs time."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import pytest
from conftest import SMALL_ROUTER, SMALL_ROUTES, count_embedded, write_route_folder

from service.config.routes import load_route_set
from service.encoding.encoder import BaseEncoder
from service.index.embedding_cache import PREFIX, cache_path
from service.index.store import build_index, load_index

NEW_UTTERANCE = "convert this bash script into a python program"


def with_new_utterance() -> dict[str, dict]:
    routes = copy.deepcopy(SMALL_ROUTES)
    routes["coding"]["utterances"].append(NEW_UTTERANCE)
    return routes


def build(folder: Path, routes: dict[str, dict], encoder: BaseEncoder) -> Path:
    route_set = load_route_set(write_route_folder(folder / "routes", routes, SMALL_ROUTER))
    build_index(route_set, encoder, folder / "index")
    return folder / "index"


def vectors_of(index_dir: Path) -> np.ndarray:
    loaded = load_index(index_dir)
    return loaded.faiss_index.reconstruct_n(0, loaded.faiss_index.ntotal)


def test_rebuild_after_adding_an_utterance_embeds_only_that_utterance(
    encoder: BaseEncoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedded = count_embedded(encoder, monkeypatch)
    index_dir = build(tmp_path / "edited", SMALL_ROUTES, encoder)
    cold_count = len(embedded)
    embedded.clear()

    build(tmp_path / "edited", with_new_utterance(), encoder)

    assert cold_count >= 17
    assert embedded == [NEW_UTTERANCE]
    cold = build(tmp_path / "cold", with_new_utterance(), encoder)
    assert np.array_equal(vectors_of(index_dir), vectors_of(cold))
    incremental, fresh = load_index(index_dir), load_index(cold)
    assert incremental.manifest["entries"] == fresh.manifest["entries"]
    assert incremental.model is not None and fresh.model is not None
    for name, array in incremental.model.to_arrays().items():
        assert np.array_equal(array, fresh.model.to_arrays()[name]), name


def test_cache_keeps_only_the_texts_of_the_last_build(encoder: BaseEncoder, tmp_path: Path) -> None:
    build(tmp_path, with_new_utterance(), encoder)
    index_dir = build(tmp_path, SMALL_ROUTES, encoder)

    with np.load(cache_path(index_dir, encoder)) as data:
        kept = len(data["keys"])
    assert kept == sum(len(route["utterances"]) for route in SMALL_ROUTES.values())
    assert len(list(index_dir.glob(f"{PREFIX}*.npz"))) == 1


def test_a_corrupt_cache_is_ignored_with_a_warning_and_rewritten(
    encoder: BaseEncoder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    index_dir = build(tmp_path, SMALL_ROUTES, encoder)
    path = cache_path(index_dir, encoder)
    path.write_bytes(path.read_bytes()[:200])  # truncated, as by a full disk
    embedded = count_embedded(encoder, monkeypatch)

    with caplog.at_level(logging.WARNING, logger="semroute"):
        build(tmp_path, SMALL_ROUTES, encoder)

    assert any("ignoring the embedding cache" in record.message for record in caplog.records)
    assert len(embedded) >= 17  # everything embedded again
    embedded.clear()
    build(tmp_path, SMALL_ROUTES, encoder)
    assert embedded == []  # and the cache was rewritten whole


def test_a_cache_of_another_encoder_identity_is_not_used(
    encoder: BaseEncoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index_dir = build(tmp_path, SMALL_ROUTES, encoder)
    old = cache_path(index_dir, encoder)
    monkeypatch.setattr(encoder, "max_chars", encoder.max_chars - 1)  # vectors may differ
    embedded = count_embedded(encoder, monkeypatch)

    build(tmp_path, SMALL_ROUTES, encoder)

    assert len(embedded) >= 17
    assert cache_path(index_dir, encoder) != old
    assert cache_path(index_dir, encoder).exists() and not old.exists()


def test_a_failed_build_keeps_the_previous_index_and_what_it_embedded(
    encoder: BaseEncoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index_dir = build(tmp_path, SMALL_ROUTES, encoder)
    before = load_index(index_dir).manifest["fingerprint"]

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr("service.index.store.make_faiss_index", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        build(tmp_path, with_new_utterance(), encoder)
    monkeypatch.undo()

    assert load_index(index_dir).manifest["fingerprint"] == before
    embedded = count_embedded(encoder, monkeypatch)
    build(tmp_path, with_new_utterance(), encoder)
    assert embedded == []
