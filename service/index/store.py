"""The on-disk index: FAISS vectors plus ``manifest.json``, written atomically, checked on load.

Layout of ``index/``: ``manifest.json`` names the files it belongs to, each with its sha256:
the vectors (``vectors-<build id>.faiss``), the route classifier (``classifier-<build id>.npz``),
the console's route map (``routemap-<build id>.npz``), when the routes have complexity
examples the prompt-complexity model (``complexity-<build id>.npz``) and, when the routes
have outcome data, the quality estimator (``quality-<build id>.npz``) and, when a wide encoder
is configured, the route classifier fitted on its vectors (``wideclassifier-<build id>.npz``,
for prompts in scripts the embedding model does not cover). A build writes the new
files first and then replaces the manifest in one ``os.replace``; that rename is the commit
point, so a build that fails or is interrupted before it leaves the previous index serving.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import faiss
import numpy as np

from service import __version__
from service.config.checksum import file_sha256
from service.config.outcomes import unlisted_models
from service.config.routes import RouteSet
from service.index import classifier, complexity, quality, route_map
from service.index.complexity import ComplexityModel
from service.index.embedding_cache import cached_encoders, summary
from service.index.fingerprint import WIDE_PER_ROUTE, fingerprint
from service.index.quality import QualityModel
from service.index.route_map import RouteMap

MANIFEST = "manifest.json"
FORMAT_VERSION = 5  # 3: the route map; 4: the classifier's lexical model; 5: its writing systems
BUILD_COMMAND = "python scripts/build_index.py"
T = TypeVar("T")


DEFAULT_APPROX_ABOVE = 200_000
TARGET_RECALL = 0.98
NPROBES = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
# From this many vectors the search walks a graph (HNSW) instead of reading every vector: on
# the default routes' 5,077 vectors of 512 floats a flat search took 0.28 ms of a 3 ms
# decision and the graph 0.05-0.08 ms, with the same decisions on 600 real prompts.
DEFAULT_GRAPH_ABOVE = 2_000
GRAPH_LINKS = 16
GRAPH_BUILD_DEPTH = 80
# The graph's recall is measured on probes as far from their nearest utterance as real
# prompts are (cosine about 0.7; real prompts' nearest utterance is at 0.63 on average), and
# held higher than the inverted file's: missed neighbours change the neighbour vote.
GRAPH_TARGET_RECALL = 0.995
EF_SEARCHES = (16, 32, 48, 64, 96, 128, 192, 256, 384, 512)


def make_faiss_index(
    vectors: np.ndarray,
    approx_above: int = DEFAULT_APPROX_ABOVE,
    target_recall: float = TARGET_RECALL,
    seed: int = 0,
    graph_above: int = DEFAULT_GRAPH_ABOVE,
) -> tuple[Any, dict[str, Any]]:
    """The FAISS index for these unit-norm rows, and the parameters the manifest records.

    Below ``graph_above`` vectors: exact search (``IndexFlatIP``), a fraction of a
    millisecond at that size. From there up to ``approx_above``: a graph
    (``IndexHNSWFlat``, ``_graph_index``). Above: an inverted file (``IndexIVFFlat``, about
    sqrt(n) lists trained on a sample) whose ``nprobe`` is the smallest that reaches
    ``target_recall`` recall@10 against exact search on 200 queries near the indexed vectors;
    the measured recall is recorded with it.
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    count, dimension = vectors.shape
    if count < graph_above and count <= approx_above:
        flat = faiss.IndexFlatIP(dimension)
        flat.add(vectors)
        return flat, {"type": "IndexFlatIP"}
    if count <= approx_above:
        return _graph_index(vectors, seed)
    rng = np.random.default_rng(seed)
    nlist = int(max(1, min(65_536, round(np.sqrt(count)), count // 39)))
    sample = vectors[rng.choice(count, size=min(count, 40 * nlist), replace=False)]
    quantizer = faiss.IndexFlatIP(dimension)
    ivf = faiss.IndexIVFFlat(quantizer, dimension, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.niter = 10
    ivf.cp.seed = seed
    ivf.train(sample)
    ivf.add(vectors)
    queries = vectors[rng.choice(count, size=min(count, 200), replace=False)]
    queries = queries + rng.normal(0, 0.02, queries.shape).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    k = min(10, count)
    truth = _exact_neighbours(vectors, queries, k)
    recall = 0.0
    for nprobe in NPROBES:
        ivf.nprobe = min(nprobe, nlist)
        recall = _recall(ivf, queries, truth)
        if recall >= target_recall or nprobe >= nlist:
            break
    return ivf, {
        "type": "IndexIVFFlat",
        "nlist": nlist,
        "nprobe": int(ivf.nprobe),
        "train_size": len(sample),
        "recall_at_10": round(recall, 4),
        "target_recall": target_recall,
    }


def _graph_index(vectors: np.ndarray, seed: int) -> tuple[Any, dict[str, Any]]:
    """An HNSW graph whose ``efSearch`` is the smallest of ``EF_SEARCHES`` that reaches
    ``GRAPH_TARGET_RECALL`` recall@10 against exact search on 300 probes.

    The graph is built on one thread: FAISS inserts in parallel in an order that varies from
    run to run, and the same routes must give the same neighbours at every build.
    """
    count, dimension = vectors.shape
    graph = faiss.IndexHNSWFlat(dimension, GRAPH_LINKS, faiss.METRIC_INNER_PRODUCT)
    graph.hnsw.efConstruction = GRAPH_BUILD_DEPTH
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        graph.add(vectors)
    finally:
        faiss.omp_set_num_threads(threads)
    rng = np.random.default_rng(seed)
    queries = vectors[rng.choice(count, size=min(count, 300), replace=False)]
    noise = rng.normal(0, 1 / np.sqrt(dimension), queries.shape).astype(np.float32)
    queries = queries + noise
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    truth = _exact_neighbours(vectors, queries, min(10, count))
    recall = 0.0
    for ef_search in EF_SEARCHES:
        graph.hnsw.efSearch = ef_search
        recall = _recall(graph, queries, truth)
        if recall >= GRAPH_TARGET_RECALL:
            break
    return graph, {
        "type": "IndexHNSWFlat",
        "links": GRAPH_LINKS,
        "ef_construction": GRAPH_BUILD_DEPTH,
        "ef_search": int(graph.hnsw.efSearch),
        "recall_at_10": round(recall, 4),
        "target_recall": GRAPH_TARGET_RECALL,
    }


def _exact_neighbours(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    return np.asarray(exact.search(queries, k)[1])


def _recall(index: Any, queries: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each query's exact top-k that ``index`` finds."""
    k = truth.shape[1]
    _, found = index.search(queries, k)
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, truth, strict=True)]))


def _apply_index_params(faiss_index: Any, params: dict[str, Any] | None) -> None:
    if params and "nprobe" in params:
        faiss.extract_index_ivf(faiss_index).nprobe = int(params["nprobe"])
    if params and "ef_search" in params:
        graph: Any = faiss.downcast_index(faiss_index)
        graph.hnsw.efSearch = int(params["ef_search"])


class IndexProblem(RuntimeError):
    """Base of the index problems a user can act on; every message names the fix."""


class IndexMissingError(IndexProblem):
    pass


class IndexStaleError(IndexProblem):
    pass


class IndexCorruptError(IndexProblem):
    pass


class TextEncoder(Protocol):
    model_id: str
    dimension: int

    def encode(
        self, texts: list[str], batch_size: int = ..., progress: bool = ...
    ) -> np.ndarray: ...


@dataclass(frozen=True)
class WideClassifier:
    """The route classifier fitted on the wide encoder's vectors, and its calibration.

    Only the route decision of a wide-path prompt uses it; its nearest utterances, route map
    position, complexity and expected quality stay those of the primary vector.
    """

    model_id: str
    model: classifier.LinearModel
    calibration: classifier.Calibration


@dataclass(frozen=True)
class LoadedIndex:
    """A searchable index and what each of its vectors stands for."""

    faiss_index: Any
    manifest: dict[str, Any]
    route_names: tuple[str, ...]
    labels: np.ndarray  # route position (in route_names) of every vector
    utterances: tuple[str, ...]
    model: classifier.LinearModel | None = None
    calibration: classifier.Calibration | None = None
    # None when the routes have no complexity examples: tiered routes keep their own model.
    complexity: ComplexityModel | None = None
    # None without outcome data: no candidate model has a learned expected quality.
    quality: QualityModel | None = None
    route_map: RouteMap | None = None  # always loaded; None only for indexes made in memory
    wide: WideClassifier | None = None  # None when the index was built without a wide encoder

    @property
    def fingerprint(self) -> str:
        return str(self.manifest["fingerprint"])

    @property
    def dimension(self) -> int:
        return int(self.manifest["embedding_dim"])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (similarities, vector ids) per query row; ids of -1 mark empty slots."""
        k = min(k, int(self.faiss_index.ntotal))
        return self.faiss_index.search(np.ascontiguousarray(queries, dtype=np.float32), k)


def _write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    descriptor, temp_name = tempfile.mkstemp(dir=path.parent, prefix=".manifest-", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(data, handle, ensure_ascii=False, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def _write_file(index_dir: Path, name: str, write: Any, written: list[Path]) -> dict[str, str]:
    """Write ``name`` through a temporary file; returns its manifest entry (path and sha256,
    hashed before the rename)."""
    temp = index_dir / f".{name}.tmp"
    written.append(temp)
    write(temp)
    checksum = file_sha256(temp)
    os.replace(temp, index_dir / name)
    written.append(index_dir / name)
    return {"path": name, "sha256": checksum}


def _save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with path.open("wb") as handle:  # a handle: np.savez would append ".npz" to a path
        np.savez(handle, **arrays)  # type: ignore[arg-type]


def _remove_unreferenced(index_dir: Path, keep: set[str]) -> None:
    for path in index_dir.iterdir():
        artefact = path.name.startswith(
            ("vectors-", "classifier-", "complexity-", "quality-", "routemap-", "wideclassifier-")
        )
        stale_artefact = artefact and path.name not in keep
        leftover_temp = path.name.startswith(".") and path.suffix == ".tmp"
        if stale_artefact or leftover_temp:
            path.unlink(missing_ok=True)


def _embed_utterances(
    encoder: TextEncoder, texts: list[str], batch_size: int, progress: bool
) -> np.ndarray:
    vectors = encoder.encode(texts, batch_size=batch_size, progress=progress)
    if vectors.shape != (len(texts), encoder.dimension):
        raise IndexCorruptError(
            f"the encoder returned shape {vectors.shape}, expected {(len(texts), encoder.dimension)}"
        )
    return vectors


def fit_route_classifier(
    route_set: RouteSet,
    encoder: TextEncoder,
    utterances: list[str],
    labels: np.ndarray,
    batch_size: int = 64,
    progress: bool = False,
    lexical: bool = True,
) -> tuple[np.ndarray, classifier.LinearModel, classifier.Calibration]:
    """The utterances' vectors and the classifier fitted on them, calibrated on the routes'
    calibration rows embedded by the same encoder (the primary one, or the wide one).

    With ``lexical``, the classifier's lexical model is fitted on the texts too (the primary
    classifier; the wide one has not been measured with it)."""
    vectors = _embed_utterances(encoder, utterances, batch_size, progress)
    route_names = list(route_set.names)
    held_out = route_set.calibration
    held_out_vectors = (
        encoder.encode([text for text, _ in held_out], batch_size=batch_size) if held_out else None
    )
    model, calibration = classifier.fit(
        vectors,
        labels,
        len(route_names),
        held_out_vectors,
        [None if label is None else route_names.index(label) for _, label in held_out],
        c=route_set.config.classifier_c,
        accept_rate=route_set.config.accept_rate,
        texts=utterances if lexical else None,
        held_out_texts=[text for text, _ in held_out] if lexical else None,
    )
    return vectors, model, calibration


def wide_rows(labels: np.ndarray, per_route: int = WIDE_PER_ROUTE) -> np.ndarray:
    """The utterances the wide classifier is fitted on: up to ``per_route`` of each route,
    evenly spread over its list (deterministic)."""
    rows = []
    for route in np.unique(labels):
        own = np.flatnonzero(labels == route)
        if len(own) > per_route:
            own = own[np.linspace(0, len(own) - 1, per_route).round().astype(np.int64)]
        rows.append(own)
    return np.sort(np.concatenate(rows)) if rows else np.zeros(0, dtype=np.int64)


def wide_training_rows(
    route_set: RouteSet, utterances: list[str], labels: np.ndarray
) -> tuple[list[str], np.ndarray]:
    """The wide classifier's texts and labels: the ``wide_rows`` of the utterances, then every
    route's ``wide_utterances``, which only this classifier learns from."""
    rows = wide_rows(labels)
    texts = [utterances[row] for row in rows]
    own = [
        (position, text)
        for position, route in enumerate(route_set.routes)  # the order of route_set.names
        for text in route.wide_utterances
    ]
    extra = np.array([position for position, _ in own], dtype=labels.dtype)
    return texts + [text for _, text in own], np.concatenate([labels[rows], extra])


def build_index(
    route_set: RouteSet,
    encoder: TextEncoder,
    index_dir: Path,
    progress: bool = False,
    batch_size: int = 64,
    approx_above: int = DEFAULT_APPROX_ABOVE,
    wide_encoder: TextEncoder | None = None,
    graph_above: int = DEFAULT_GRAPH_ABOVE,
) -> dict[str, Any]:
    """Embed every utterance, write the index, and return the manifest that was committed.

    The classifier and, when the routes have complexity examples, the complexity model are
    fitted here too, so the serving process only loads weights (no scikit-learn, no fitting
    at start-up). With ``wide_encoder``, the utterances and calibration rows are embedded by
    it too and a second classifier is fitted on those vectors. Each encoder embeds only the
    texts its cache in ``index_dir`` lacks (``embedding_cache``), so a rebuild after a small
    edit of the routes costs seconds, not minutes.
    """
    started = time.perf_counter()
    with cached_encoders(index_dir, encoder, wide_encoder) as (cached, cached_wide):
        return _build(
            route_set,
            cached,
            index_dir,
            progress,
            batch_size,
            (graph_above, approx_above),
            cached_wide,
            started,
        )


def _build(
    route_set: RouteSet,
    encoder: TextEncoder,
    index_dir: Path,
    progress: bool,
    batch_size: int,
    search_sizes: tuple[int, int],
    wide_encoder: TextEncoder | None,
    started: float,
) -> dict[str, Any]:
    entries = [
        {"route": route.name, "utterance": utterance}
        for route in route_set.routes
        for utterance in route.utterances
    ]
    utterances = [entry["utterance"] for entry in entries]
    route_names = list(route_set.names)
    labels = np.array([route_names.index(entry["route"]) for entry in entries], dtype=np.int64)
    vectors, model, calibration = fit_route_classifier(
        route_set, encoder, utterances, labels, batch_size, progress
    )
    graph_above, approx_above = search_sizes
    index, index_params = make_faiss_index(
        vectors, approx_above=approx_above, graph_above=graph_above
    )
    wide = None
    if wide_encoder is not None:
        wide_texts, wide_labels = wide_training_rows(route_set, utterances, labels)
        _, wide_model, wide_calibration = fit_route_classifier(
            route_set,
            wide_encoder,
            wide_texts,
            wide_labels,
            batch_size,
            progress,
            lexical=False,
        )
        wide = WideClassifier(wide_encoder.model_id, wide_model, wide_calibration)
    complexity_model = (
        complexity.fit_examples(route_set.complexity, encoder, batch_size)
        if route_set.complexity
        else None
    )
    projection = route_map.fit(vectors, labels, len(route_names))

    quality_model, quality_summary = fit_quality(route_set, encoder, batch_size)

    index_dir.mkdir(parents=True, exist_ok=True)
    print_ = fingerprint(route_set, encoder.model_id, wide.model_id if wide else None)
    build_id = f"{print_[:12]}-{int(time.time() * 1000)}"
    vectors_name = f"vectors-{build_id}.faiss"
    model_name = f"classifier-{build_id}.npz"
    files: dict[str, dict[str, str]] = {}
    written: list[Path] = []
    try:
        files["vectors"] = _write_file(
            index_dir, vectors_name, lambda path: faiss.write_index(index, str(path)), written
        )
        arrays = {
            "classifier": (model_name, model.to_arrays()),
            "route_map": (f"routemap-{build_id}.npz", projection.to_arrays()),
        }
        if complexity_model is not None:
            arrays["complexity"] = (f"complexity-{build_id}.npz", complexity_model.to_arrays())
        if quality_model is not None:
            arrays["quality"] = (f"quality-{build_id}.npz", quality_model.to_arrays())
        if wide is not None:
            arrays["wide_classifier"] = (f"wideclassifier-{build_id}.npz", wide.model.to_arrays())
        for key, (name, data) in arrays.items():
            files[key] = _write_file(
                index_dir, name, lambda path, data=data: _save_arrays(path, data), written
            )
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "embedding_model": encoder.model_id,
        "embedding_dim": encoder.dimension,
        "index_type": index_params["type"],
        "index_params": index_params,
        "encoder_backend": getattr(encoder, "backend", None),
        "encoder_graph": getattr(encoder, "graph", None),
        "metric": "inner_product",
        "normalized": True,
        "fingerprint": print_,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "build_seconds": round(time.perf_counter() - started, 3),
        "routes": {route.name: len(route.utterances) for route in route_set.routes},
        "files": files,
        "calibration": calibration.to_json(),
        "wide_encoder": None
        if wide is None
        else {
            "model": wide.model_id,
            "dimension": wide_encoder.dimension if wide_encoder else None,
            "backend": getattr(wide_encoder, "backend", None),
            "calibration": wide.calibration.to_json(),
            "wide_only_utterances": {
                route.name: len(route.wide_utterances)
                for route in route_set.routes
                if route.wide_utterances
            },
        },
        "quality": quality_summary,
        "embedding_cache": summary(encoder, wide_encoder),
        "route_order": route_names,
        "entries": entries,
    }
    try:
        _write_json_atomically(index_dir / MANIFEST, manifest)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    _remove_unreferenced(index_dir, keep={entry["path"] for entry in files.values()})
    return manifest


def fit_quality(
    route_set: RouteSet, encoder: TextEncoder, batch_size: int = 64
) -> tuple[QualityModel | None, dict[str, Any] | None]:
    """The quality estimator of the route set's outcome data, and its manifest summary.

    Only models some route lists are fitted (the others could never be chosen); they are
    named in the summary under ``unlisted_models``, which the build prints.
    """
    rows = route_set.outcomes
    if not rows:
        return None, None
    listed = route_set.listed_models()
    vectors = encoder.encode([row.prompt for row in rows], batch_size=batch_size)
    candidates = sorted({model for row in rows for model in row.outcomes} & set(listed))
    model = quality.fit_rows(rows, vectors, candidates) if candidates else None
    summary: dict[str, Any] = {
        "rows": len(rows),
        "models": {}
        if model is None
        else {
            name: {"rows": int(count), "mean_score": round(float(mean), 4)}
            for name, count, mean in zip(model.models, model.rows, model.mean_score, strict=True)
        },
        "unlisted_models": unlisted_models(rows, listed),
        "too_few_rows": sorted(set(candidates) - set(model.models if model else ())),
    }
    return model, summary


def read_manifest(index_dir: Path) -> dict[str, Any]:
    path = index_dir / MANIFEST
    if not path.exists():
        raise IndexMissingError(f"no index in {index_dir}/; build it with: {BUILD_COMMAND}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise IndexCorruptError(
            f"{path} cannot be read ({error}); rebuild it with: {BUILD_COMMAND}"
        ) from error
    required = {"format_version", "fingerprint", "embedding_model", "embedding_dim", "files"}
    if not isinstance(manifest, dict) or not required <= manifest.keys():
        raise IndexCorruptError(
            f"{path} is not a semroute manifest; rebuild it with: {BUILD_COMMAND}"
        )
    if manifest["format_version"] != FORMAT_VERSION:
        raise IndexStaleError(
            f"{path} has format {manifest['format_version']}, this version reads "
            f"{FORMAT_VERSION}; rebuild it with: {BUILD_COMMAND}"
        )
    return manifest


def staleness(
    manifest: dict[str, Any],
    route_set: RouteSet,
    embedding_model: str,
    wide_model: str | None = None,
) -> str | None:
    """Why the index does not match these routes and these models, or None when it does."""
    if manifest["embedding_model"] != embedding_model:
        return (
            f"the index was built with embedding model '{manifest['embedding_model']}', "
            f"the service is configured with '{embedding_model}'"
        )
    built_wide = (manifest.get("wide_encoder") or {}).get("model")
    if built_wide != wide_model:
        return (
            f"the index was built with wide encoder '{built_wide or 'none'}', the service "
            f"is configured with '{wide_model or 'none'}' (SEMROUTE_WIDE_ENCODER)"
        )
    if manifest["fingerprint"] != fingerprint(route_set, embedding_model, wide_model):
        return (
            "the routes changed since the index was built (utterances, calibration or "
            "complexity examples, outcome data or route names differ)"
        )
    return None


def check_index(
    index_dir: Path, route_set: RouteSet, embedding_model: str, wide_model: str | None = None
) -> dict[str, Any]:
    """Return the manifest if ``index_dir`` holds an up-to-date index, else raise with the fix."""
    manifest = read_manifest(index_dir)
    reason = staleness(manifest, route_set, embedding_model, wide_model)
    if reason:
        raise IndexStaleError(f"{index_dir}/ is stale: {reason}; rebuild it with: {BUILD_COMMAND}")
    return manifest


def load_index(index_dir: Path, manifest: dict[str, Any] | None = None) -> LoadedIndex:
    """Read the vectors and models named by the manifest, verifying checksums and shapes."""
    manifest = manifest or read_manifest(index_dir)
    try:
        path = _verified(index_dir, manifest["files"]["vectors"])
        model_path = _verified(index_dir, manifest["files"]["classifier"])
        map_path = _verified(index_dir, manifest["files"]["route_map"])
        complexity_entry = manifest["files"].get("complexity")
        complexity_path = _verified(index_dir, complexity_entry) if complexity_entry else None
        quality_entry = manifest["files"].get("quality")
        quality_path = _verified(index_dir, quality_entry) if quality_entry else None
        wide_entry = manifest["files"].get("wide_classifier")
        wide_path = _verified(index_dir, wide_entry) if wide_entry else None
        wide_built = manifest.get("wide_encoder") if wide_entry else None
        wide_calibration = (
            classifier.Calibration.from_json(wide_built["calibration"]) if wide_built else None
        )
        entries = manifest["entries"]
        route_names = tuple(manifest["route_order"])
        calibration = classifier.Calibration.from_json(manifest["calibration"])
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise IndexCorruptError(
            f"{index_dir}/{MANIFEST} lacks or garbles {error}; rebuild it with: {BUILD_COMMAND}"
        ) from error
    model = _read_arrays(model_path, classifier.LinearModel.from_arrays)
    projection = _read_arrays(map_path, RouteMap.from_arrays)
    complexity_model = (
        _read_arrays(complexity_path, ComplexityModel.from_arrays) if complexity_path else None
    )
    quality_model = _read_arrays(quality_path, QualityModel.from_arrays) if quality_path else None
    wide = None
    if wide_path is not None and wide_built is not None and wide_calibration is not None:
        wide_model = _read_arrays(wide_path, classifier.LinearModel.from_arrays)
        if wide_model.centroids.shape != (len(route_names), wide_built["dimension"]):
            raise IndexCorruptError(
                f"{wide_path} does not fit {len(route_names)} routes; rebuild it with: "
                f"{BUILD_COMMAND}"
            )
        wide = WideClassifier(str(wide_built["model"]), wide_model, wide_calibration)
    try:
        faiss_index = faiss.read_index(str(path))
        _apply_index_params(faiss_index, manifest.get("index_params"))
    except RuntimeError as error:
        raise IndexCorruptError(f"{path} is not a FAISS index ({error})") from error
    if faiss_index.ntotal != len(entries) or faiss_index.d != manifest["embedding_dim"]:
        raise IndexCorruptError(
            f"{path} holds {faiss_index.ntotal} vectors of dimension {faiss_index.d}, the manifest "
            f"{len(entries)} of {manifest['embedding_dim']}; rebuild it with: {BUILD_COMMAND}"
        )
    if (
        model.centroids.shape != (len(route_names), manifest["embedding_dim"])
        or model.weights.shape[0] != manifest["embedding_dim"]
    ):
        raise IndexCorruptError(
            f"{model_path} does not fit {len(route_names)} routes; rebuild it with: {BUILD_COMMAND}"
        )
    # The complexity weights cover the embedding plus the surface features.
    if complexity_model is not None and complexity_model.weights.shape != (
        manifest["embedding_dim"] + complexity.SURFACE_FEATURES,
    ):
        raise IndexCorruptError(
            f"{complexity_path} does not fit {manifest['embedding_dim']}-d vectors; "
            f"rebuild it with: {BUILD_COMMAND}"
        )
    if quality_model is not None and quality_model.dimension != manifest["embedding_dim"]:
        raise IndexCorruptError(
            f"{quality_path} does not fit {manifest['embedding_dim']}-d vectors; "
            f"rebuild it with: {BUILD_COMMAND}"
        )
    map_shapes = (projection.coords.shape, projection.components.shape)
    if map_shapes != ((len(entries), 2), (2, manifest["embedding_dim"])):
        raise IndexCorruptError(
            f"{map_path} does not fit the {len(entries)} vectors; rebuild it with: {BUILD_COMMAND}"
        )
    position = {name: i for i, name in enumerate(route_names)}
    labels = np.fromiter(
        (position[e["route"]] for e in entries), dtype=np.int64, count=len(entries)
    )
    return LoadedIndex(
        faiss_index=faiss_index,
        manifest=manifest,
        route_names=route_names,
        labels=labels,
        utterances=tuple(entry["utterance"] for entry in entries),
        model=model,
        calibration=calibration,
        complexity=complexity_model,
        quality=quality_model,
        route_map=projection,
        wide=wide,
    )


def _read_arrays(path: Path, from_arrays: Callable[[Any], T]) -> T:
    """The model ``from_arrays`` builds from the ``.npz`` at ``path``, or IndexCorruptError."""
    try:
        with np.load(path) as arrays:
            return from_arrays(arrays)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as error:
        raise IndexCorruptError(
            f"{path} cannot be read ({error}); rebuild it with: {BUILD_COMMAND}"
        ) from error


def _verified(index_dir: Path, described: dict[str, str]) -> Path:
    """The artefact a manifest entry names, after checking it exists and matches its sha256."""
    path = index_dir / described["path"]
    if not path.exists():
        raise IndexCorruptError(f"{path} is missing; rebuild it with: {BUILD_COMMAND}")
    if file_sha256(path) != described["sha256"]:
        raise IndexCorruptError(
            f"{path} does not match its checksum in {MANIFEST} (truncated or replaced); "
            f"rebuild it with: {BUILD_COMMAND}"
        )
    return path
