"""Index sizes: exact search for small route sets, an HNSW graph from a few thousand vectors
and an IVF index above the configured size, each approximate one tuned to its recall target,
recorded in the manifest and restored on load."""

import json
from pathlib import Path

import faiss
import numpy as np

from service.config.routes import RouteSet
from service.encoding.encoder import Encoder
from service.index.store import (
    EF_SEARCHES,
    GRAPH_TARGET_RECALL,
    build_index,
    load_index,
    make_faiss_index,
)


def clustered(count: int, clusters: int = 50, dimension: int = 32, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dimension))
    vectors = centres[rng.integers(0, clusters, count)] + rng.normal(0, 0.3, (count, dimension))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)


def test_small_sets_get_exact_search() -> None:
    index, params = make_faiss_index(clustered(500), approx_above=1000)

    assert params == {"type": "IndexFlatIP"}
    assert isinstance(index, faiss.IndexFlatIP)
    assert index.ntotal == 500


def test_large_sets_get_an_ivf_index_that_meets_the_recall_target() -> None:
    vectors = clustered(8000)
    index, params = make_faiss_index(vectors, approx_above=1000)

    assert params["type"] == "IndexIVFFlat"
    assert params["recall_at_10"] >= params["target_recall"] == 0.98
    assert 1 <= params["nprobe"] <= params["nlist"]
    assert index.ntotal == 8000
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    queries = vectors[:100]
    _, truth = exact.search(queries, 10)
    _, found = index.search(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)])
    assert recall >= 0.95


def test_an_approximate_index_is_recorded_and_restored(
    small_route_set: RouteSet, encoder: Encoder, tmp_path: Path
) -> None:
    manifest = build_index(small_route_set, encoder, tmp_path / "index", approx_above=1)

    assert manifest["index_type"] == "IndexIVFFlat"
    assert manifest["index_params"]["nprobe"] >= 1
    assert manifest["encoder_backend"] == encoder.backend
    on_disk = json.loads((tmp_path / "index" / "manifest.json").read_text())
    assert on_disk["index_params"] == manifest["index_params"]
    loaded = load_index(tmp_path / "index")
    assert faiss.extract_index_ivf(loaded.faiss_index).nprobe == manifest["index_params"]["nprobe"]
    query = encoder.encode([small_route_set.routes[0].utterances[0]])
    similarities, ids = loaded.search(query, 3)
    assert ids[0][0] == 0
    assert similarities[0][0] > 0.99


def test_the_default_build_keeps_exact_search(
    small_route_set: RouteSet, encoder: Encoder, tmp_path: Path
) -> None:
    manifest = build_index(small_route_set, encoder, tmp_path / "index")

    assert manifest["index_type"] == "IndexFlatIP"
    assert manifest["index_params"] == {"type": "IndexFlatIP"}


def test_mid_sized_sets_get_a_graph_that_finds_the_exact_neighbours() -> None:
    vectors = clustered(3000, dimension=64)
    index, params = make_faiss_index(vectors, graph_above=2000)

    assert isinstance(index, faiss.IndexHNSWFlat)
    assert params["type"] == "IndexHNSWFlat"
    assert params["recall_at_10"] >= params["target_recall"] == GRAPH_TARGET_RECALL
    assert params["ef_search"] in EF_SEARCHES
    assert index.hnsw.efSearch == params["ef_search"]
    # Prompts that are no copy of an utterance: each indexed vector moved well away.
    rng = np.random.default_rng(5)
    queries = vectors[:200] + rng.normal(0, 0.15, (200, 64)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact = faiss.IndexFlatIP(64)
    exact.add(vectors)
    _, truth = exact.search(queries, 10)
    _, found = index.search(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)])
    assert recall >= 0.98


def test_the_graph_is_the_same_at_every_build() -> None:
    vectors = clustered(2500, dimension=48)
    first, first_params = make_faiss_index(vectors, graph_above=2000)
    second, second_params = make_faiss_index(vectors, graph_above=2000)

    assert first_params == second_params
    assert np.array_equal(faiss.serialize_index(first), faiss.serialize_index(second))


def test_sets_below_the_graph_size_keep_exact_search() -> None:
    index, params = make_faiss_index(clustered(1999), graph_above=2000)

    assert params == {"type": "IndexFlatIP"}
    assert isinstance(index, faiss.IndexFlatIP)


def test_a_graph_index_is_recorded_and_restored(
    small_route_set: RouteSet, encoder: Encoder, tmp_path: Path
) -> None:
    manifest = build_index(small_route_set, encoder, tmp_path / "index", graph_above=1)

    assert manifest["index_type"] == "IndexHNSWFlat"
    ef_search = manifest["index_params"]["ef_search"]
    loaded = load_index(tmp_path / "index")
    assert faiss.downcast_index(loaded.faiss_index).hnsw.efSearch == ef_search
    first = small_route_set.routes[0].utterances[0]
    similarities, ids = loaded.search(encoder.encode([first]), 3)
    assert loaded.utterances[int(ids[0][0])] == first
    assert similarities[0][0] > 0.99
