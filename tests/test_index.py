"""The on-disk index: build/load round trip, freshness checks, and atomic rebuilds."""

import copy
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest
from conftest import SMALL_ROUTER, SMALL_ROUTES, WriteRoutes, add_complexity_examples

from service.config.complexity_examples import COMPLEXITY_FILE
from service.config.routes import RouteSet, load_route_set
from service.config.settings import MULTILINGUAL_MODEL
from service.encoding.encoder import Encoder
from service.index import complexity
from service.index import store as index_module
from service.index.embedding_cache import PREFIX as CACHE_PREFIX
from service.index.embedding_cache import cache_path
from service.index.fingerprint import fingerprint
from service.index.store import (
    MANIFEST,
    IndexCorruptError,
    IndexMissingError,
    IndexStaleError,
    build_index,
    check_index,
    load_index,
    read_manifest,
)


def _snapshot(index_dir: Path) -> dict[str, bytes]:
    """The index's files; the embedding cache is left out (a failed build keeps the vectors it
    computed there, on purpose: tests/test_embedding_cache.py)."""
    return {
        path.name: path.read_bytes()
        for path in sorted(index_dir.iterdir())
        if not path.name.startswith(CACHE_PREFIX)
    }


def _edited_route_set(tmp_path: Path, write_routes: WriteRoutes) -> RouteSet:
    routes = copy.deepcopy(SMALL_ROUTES)
    routes["cooking"]["utterances"].append("how do I sharpen a kitchen knife")
    return load_route_set(write_routes(tmp_path / "edited-routes", routes, SMALL_ROUTER))


def _complexity_routes(tmp_path: Path, write_routes: WriteRoutes) -> Path:
    """``SMALL_ROUTES`` plus the shipped complexity examples: the routes of ``complexity_index``."""
    return add_complexity_examples(write_routes(tmp_path / "cx-routes", SMALL_ROUTES, SMALL_ROUTER))


# -- build and load ---------------------------------------------------------------------------


def test_build_then_load_round_trips_labels_and_utterances(
    small_route_set: RouteSet, small_index: Path
) -> None:
    loaded = load_index(small_index)

    assert loaded.route_names == ("coding", "cooking", "greetings")
    expected = [(r.name, u) for r in small_route_set.routes for u in r.utterances]
    labelled = zip(loaded.labels, loaded.utterances, strict=True)
    assert [(loaded.route_names[label], text) for label, text in labelled] == expected
    assert loaded.labels.dtype == np.int64
    assert loaded.faiss_index.ntotal == len(expected)
    assert loaded.dimension == 512


def test_manifest_records_what_the_index_was_built_from(
    small_route_set: RouteSet, small_index: Path, encoder: Encoder
) -> None:
    manifest = read_manifest(small_index)

    assert manifest["fingerprint"] == fingerprint(small_route_set, encoder.model_id)
    assert manifest["embedding_model"] == MULTILINGUAL_MODEL
    assert manifest["embedding_dim"] == 512
    assert manifest["index_type"] == "IndexFlatIP"
    assert manifest["routes"] == {"coding": 6, "cooking": 6, "greetings": 5}
    assert manifest["entries"][0] == {
        "route": "coding",
        "utterance": SMALL_ROUTES["coding"]["utterances"][0],
    }
    assert len(manifest["entries"]) == 17
    vectors = manifest["files"]["vectors"]
    vectors_path = small_index / vectors["path"]
    assert vectors_path.is_file()
    assert vectors["sha256"] == hashlib.sha256(vectors_path.read_bytes()).hexdigest()
    model = manifest["files"]["classifier"]
    assert model["sha256"] == hashlib.sha256((small_index / model["path"]).read_bytes()).hexdigest()
    assert manifest["route_order"] == ["coding", "cooking", "greetings"]
    assert manifest["calibration"]["source"] == "cross-validation"
    assert "complexity" not in manifest["files"], "the routes have no complexity examples"
    route_map = manifest["files"]["route_map"]
    cache = cache_path(small_index, encoder).name  # the build's embedding cache
    assert sorted(p.name for p in small_index.iterdir()) == sorted(
        [MANIFEST, vectors["path"], model["path"], route_map["path"], cache]
    )
    assert load_index(small_index).complexity is None


def test_route_map_is_stored_with_the_index_and_places_its_own_vectors(small_index: Path) -> None:
    entry = read_manifest(small_index)["files"]["route_map"]
    path = small_index / entry["path"]
    loaded = load_index(small_index)

    assert path.name.startswith("routemap-") and path.suffix == ".npz"
    assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.route_map is not None
    assert loaded.route_map.method == "discriminant"  # three routes
    vectors = loaded.faiss_index.reconstruct_n(0, loaded.faiss_index.ntotal)
    np.testing.assert_allclose(
        loaded.route_map.project(vectors), loaded.route_map.coords, atol=1e-5
    )
    assert loaded.route_map.coords.shape == (17, 2)
    assert len(loaded.route_map.pairs) == 3  # every pair of three routes


def test_complexity_examples_are_fitted_at_build_and_load_back_unchanged(
    complexity_index: Path, tmp_path: Path, write_routes: WriteRoutes, encoder: Encoder
) -> None:
    route_set = load_route_set(_complexity_routes(tmp_path, write_routes))
    fitted = complexity.fit_examples(route_set.complexity, encoder)

    entry = read_manifest(complexity_index)["files"]["complexity"]
    loaded = load_index(complexity_index).complexity

    path = complexity_index / entry["path"]
    assert path.name.startswith("complexity-") and path.suffix == ".npz"
    assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded is not None
    texts = [text for text, _ in route_set.complexity[:20]]
    vectors = encoder.encode(texts)
    assert np.allclose(
        loaded.hard_probability(vectors, texts), fitted.hard_probability(vectors, texts), atol=1e-6
    )


def test_searching_an_utterance_finds_itself_first(small_index: Path, encoder: Encoder) -> None:
    loaded = load_index(small_index)
    utterance = SMALL_ROUTES["cooking"]["utterances"][3]

    similarities, ids = loaded.search(encoder.encode_one(utterance)[None, :], k=5)

    assert ids.shape == (1, 5)
    assert loaded.utterances[ids[0][0]] == utterance
    assert loaded.route_names[loaded.labels[ids[0][0]]] == "cooking"
    assert similarities[0][0] == pytest.approx(1.0, abs=1e-4)
    assert list(similarities[0]) == sorted(similarities[0], reverse=True)


def test_search_caps_k_at_the_number_of_vectors(small_index: Path) -> None:
    loaded = load_index(small_index)
    stored = loaded.faiss_index.reconstruct(0)[None, :]

    similarities, ids = loaded.search(stored, k=1000)

    assert ids.shape == (1, 17)
    assert sorted(ids[0].tolist()) == list(range(17))
    assert ids[0][0] == 0
    assert similarities[0][0] == pytest.approx(1.0, abs=1e-5)


# -- freshness --------------------------------------------------------------------------------


def test_check_of_a_current_index_returns_its_manifest(
    small_route_set: RouteSet, small_index: Path, encoder: Encoder
) -> None:
    manifest = check_index(small_index, small_route_set, encoder.model_id)

    assert manifest == read_manifest(small_index)


def test_index_is_stale_after_the_routes_change_and_names_the_rebuild_command(
    small_index: Path, encoder: Encoder, tmp_path: Path, write_routes: WriteRoutes
) -> None:
    edited = _edited_route_set(tmp_path, write_routes)

    with pytest.raises(IndexStaleError) as caught:
        check_index(small_index, edited, encoder.model_id)

    assert "routes changed" in str(caught.value)
    assert "scripts/build_index.py" in str(caught.value)


def test_index_is_stale_after_the_complexity_examples_change(
    complexity_index: Path, encoder: Encoder, tmp_path: Path, write_routes: WriteRoutes
) -> None:
    folder = _complexity_routes(tmp_path, write_routes)
    check_index(complexity_index, load_route_set(folder), encoder.model_id)
    examples = folder / COMPLEXITY_FILE
    examples.write_text(
        examples.read_text(encoding="utf-8") + '{"text": "hi there", "label": "easy"}\n',
        encoding="utf-8",
    )

    with pytest.raises(IndexStaleError) as caught:
        check_index(complexity_index, load_route_set(folder), encoder.model_id)

    assert "complexity examples" in str(caught.value)
    assert "scripts/build_index.py" in str(caught.value)
    examples.unlink()
    with pytest.raises(IndexStaleError):
        check_index(complexity_index, load_route_set(folder), encoder.model_id)


def test_index_is_stale_for_another_embedding_model(
    small_route_set: RouteSet, small_index: Path
) -> None:
    with pytest.raises(IndexStaleError) as caught:
        check_index(small_index, small_route_set, "BAAI/bge-small-en-v1.5")

    message = str(caught.value)
    assert MULTILINGUAL_MODEL in message
    assert "BAAI/bge-small-en-v1.5" in message
    assert "scripts/build_index.py" in message


def test_missing_index_says_how_to_build_it(small_route_set: RouteSet, tmp_path: Path) -> None:
    with pytest.raises(IndexMissingError, match=r"scripts/build_index\.py"):
        check_index(tmp_path / "empty", small_route_set, "any")
    with pytest.raises(IndexMissingError):
        load_index(tmp_path / "empty")


ARTEFACTS = ("vectors", "classifier", "complexity", "route_map")


@pytest.mark.parametrize("artefact", ARTEFACTS)
def test_truncated_artefact_fails_its_checksum(complexity_index: Path, artefact: str) -> None:
    path = complexity_index / read_manifest(complexity_index)["files"][artefact]["path"]
    path.write_bytes(path.read_bytes()[:-100])

    with pytest.raises(IndexCorruptError) as caught:
        load_index(complexity_index)

    assert "checksum" in str(caught.value)
    assert path.name in str(caught.value)
    assert "scripts/build_index.py" in str(caught.value)


@pytest.mark.parametrize("artefact", ARTEFACTS)
def test_deleted_artefact_is_reported_as_corrupt(complexity_index: Path, artefact: str) -> None:
    path = complexity_index / read_manifest(complexity_index)["files"][artefact]["path"]
    path.unlink()

    with pytest.raises(IndexCorruptError, match="is missing"):
        load_index(complexity_index)


def test_complexity_file_that_is_not_the_model_is_refused_even_with_its_checksum(
    complexity_index: Path,
) -> None:
    manifest = read_manifest(complexity_index)
    entry = manifest["files"]["complexity"]
    path = complexity_index / entry["path"]
    path.write_bytes(b"not an npz archive")
    entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (complexity_index / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")

    with pytest.raises(IndexCorruptError, match=r"cannot be read.*scripts/build_index\.py"):
        load_index(complexity_index)


def test_unreadable_manifest_is_reported_as_corrupt(small_index: Path) -> None:
    (small_index / MANIFEST).write_text("{not json", encoding="utf-8")

    with pytest.raises(IndexCorruptError, match=r"scripts/build_index\.py"):
        read_manifest(small_index)


def test_manifest_of_another_format_version_is_stale(small_index: Path) -> None:
    path = small_index / MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["format_version"] = 99
    path.write_text(json.dumps(manifest), encoding="utf-8")

    with pytest.raises(IndexStaleError, match=r"scripts/build_index\.py"):
        read_manifest(small_index)


# -- atomic rebuilds --------------------------------------------------------------------------


def _assert_previous_index_intact(
    index_dir: Path, before: dict[str, bytes], manifest: dict[str, Any]
) -> None:
    after = _snapshot(index_dir)
    assert sorted(after) == sorted(before), "no file added or removed"
    assert after == before, "no file changed"
    assert not [p.name for p in index_dir.iterdir() if p.name.endswith(".tmp")]
    assert load_index(index_dir).fingerprint == manifest["fingerprint"]


def test_failed_vector_write_leaves_the_previous_index_untouched(
    small_index: Path,
    encoder: Encoder,
    tmp_path: Path,
    write_routes: WriteRoutes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    manifest, before = read_manifest(small_index), _snapshot(small_index)
    real_write = faiss.write_index

    def write_half_then_fail(index: Any, path: str) -> None:
        real_write(index, path)
        Path(path).write_bytes(Path(path).read_bytes()[:50])
        raise RuntimeError("disk full")

    monkeypatch.setattr(faiss, "write_index", write_half_then_fail)

    with pytest.raises(RuntimeError, match="disk full"):
        build_index(_edited_route_set(tmp_path, write_routes), encoder, small_index)

    _assert_previous_index_intact(small_index, before, manifest)


def test_failing_encoder_leaves_the_previous_index_untouched(
    small_index: Path,
    encoder: Encoder,
    tmp_path: Path,
    write_routes: WriteRoutes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    manifest, before = read_manifest(small_index), _snapshot(small_index)

    def broken_embed(*args: Any, **kwargs: Any) -> np.ndarray:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(encoder, "_embed", broken_embed)  # the model itself fails

    with pytest.raises(RuntimeError, match="out of memory"):
        build_index(_edited_route_set(tmp_path, write_routes), encoder, small_index)

    _assert_previous_index_intact(small_index, before, manifest)


def test_encoder_of_the_wrong_shape_is_refused_before_anything_is_written(
    small_index: Path, small_route_set: RouteSet, encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, before = read_manifest(small_index), _snapshot(small_index)

    class OneRowShort:
        """An encoder of the TextEncoder protocol only (no cache), one row short."""

        model_id, dimension = encoder.model_id, encoder.dimension

        def encode(self, texts: list[str], **kwargs: Any) -> np.ndarray:
            return np.zeros((len(texts) - 1, 512), np.float32)

    with pytest.raises(IndexCorruptError, match="shape"):
        build_index(small_route_set, OneRowShort(), small_index)

    _assert_previous_index_intact(small_index, before, manifest)


def test_build_interrupted_while_committing_the_manifest_leaves_the_previous_index(
    small_index: Path,
    encoder: Encoder,
    tmp_path: Path,
    write_routes: WriteRoutes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    manifest, before = read_manifest(small_index), _snapshot(small_index)
    real_replace = os.replace

    def interrupt_on_manifest(src: Any, dst: Any) -> None:
        if Path(dst).name == MANIFEST:
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(index_module.os, "replace", interrupt_on_manifest)

    with pytest.raises(KeyboardInterrupt):
        build_index(_edited_route_set(tmp_path, write_routes), encoder, small_index)

    _assert_previous_index_intact(small_index, before, manifest)


def _complexity_route_set(tmp_path: Path, write_routes: WriteRoutes) -> RouteSet:
    return load_route_set(_complexity_routes(tmp_path, write_routes))


@pytest.mark.parametrize(
    "new_routes",
    [_edited_route_set, _complexity_route_set],
    ids=["edited utterances", "with complexity examples"],
)
def test_build_interrupted_while_writing_the_manifest_leaves_the_previous_index(
    small_index: Path,
    encoder: Encoder,
    tmp_path: Path,
    write_routes: WriteRoutes,
    monkeypatch: pytest.MonkeyPatch,
    new_routes: Callable[[Path, WriteRoutes], RouteSet],
) -> None:
    """Every artefact the build wrote (vectors, classifier, complexity model) is removed."""
    manifest, before = read_manifest(small_index), _snapshot(small_index)

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(index_module, "_write_json_atomically", interrupted)

    with pytest.raises(KeyboardInterrupt):
        build_index(new_routes(tmp_path, write_routes), encoder, small_index)

    _assert_previous_index_intact(small_index, before, manifest)


def test_build_interrupted_while_hashing_the_new_vectors_leaves_the_previous_index(
    small_index: Path,
    encoder: Encoder,
    tmp_path: Path,
    write_routes: WriteRoutes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The new vector file is already in place while its checksum is computed (seconds for a
    large index); an interrupt then must not leave it behind next to the previous index."""
    manifest, before = read_manifest(small_index), _snapshot(small_index)

    def interrupted(path: Path) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(index_module, "file_sha256", interrupted)

    with pytest.raises(KeyboardInterrupt):
        build_index(_edited_route_set(tmp_path, write_routes), encoder, small_index)

    monkeypatch.undo()
    _assert_previous_index_intact(small_index, before, manifest)


def test_rebuild_commits_the_new_index_and_removes_the_old_vector_file(
    small_index: Path, encoder: Encoder, tmp_path: Path, write_routes: WriteRoutes
) -> None:
    old_vectors = read_manifest(small_index)["files"]["vectors"]["path"]
    (small_index / ".manifest-leftover.tmp").write_text("{}", encoding="utf-8")
    edited = _edited_route_set(tmp_path, write_routes)

    manifest = build_index(edited, encoder, small_index)

    assert manifest == read_manifest(small_index)
    new_vectors = manifest["files"]["vectors"]["path"]
    new_model = manifest["files"]["classifier"]["path"]
    new_map = manifest["files"]["route_map"]["path"]
    assert new_vectors != old_vectors
    assert sorted(p.name for p in small_index.iterdir()) == sorted(
        [MANIFEST, new_vectors, new_model, new_map, cache_path(small_index, encoder).name]
    )
    loaded = load_index(small_index)
    assert loaded.fingerprint == fingerprint(edited, encoder.model_id)
    assert "how do I sharpen a kitchen knife" in loaded.utterances
    check_index(small_index, edited, encoder.model_id)


def test_rebuild_without_complexity_examples_removes_the_old_complexity_file(
    complexity_index: Path, encoder: Encoder, small_route_set: RouteSet
) -> None:
    old = read_manifest(complexity_index)["files"]["complexity"]["path"]

    manifest = build_index(small_route_set, encoder, complexity_index)

    assert "complexity" not in manifest["files"]
    assert not (complexity_index / old).exists()
    assert load_index(complexity_index).complexity is None
