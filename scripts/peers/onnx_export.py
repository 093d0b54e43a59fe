"""The project's ONNX exporter: builds ONNX graphs of the Siamese network from the tensors
`oneshot export` writes (weights.safetensors, named by Burn module path, with the architecture
as JSON in its metadata).

Two graphs, the two things the page does:
- twin.onnx:  images [n, 1, s, s] -> embeddings [n, d]
- query.onnx: views [v, 1, s, s], supports [k, v * d] -> scores [k]
  (each of the query's v views against the same view of k cached support drawings, whose v view
  embeddings lie back to back, through the weighted-L1 head and, where the architecture has it,
  its product term; the sigmoid of the mean logit)

Usage: python onnx_export.py DIR   (writes DIR/twin.onnx and DIR/query.onnx)
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors import safe_open

OPSET = 17
BATCH_NORM_EPSILON = 1e-5  # Burn's BatchNormConfig default


def load(path):
    """(architecture dict, {name: float32 array}) from a safetensors file of `oneshot export`."""
    with safe_open(str(path), framework="np") as f:
        config = json.loads(f.metadata()["config"])
        tensors = {name: f.get_tensor(name).astype(np.float32) for name in f.keys()}
    return config, tensors


class Graph:
    """Nodes and initialisers of one ONNX graph, with fresh value names."""

    def __init__(self, tensors):
        self.tensors = tensors
        self.nodes = []
        self.initializers = []
        self.count = 0

    def weight(self, name, array=None):
        value = self.tensors[name] if array is None else array
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value, np.float32), name))
        return name

    def op(self, kind, inputs, **attributes):
        self.count += 1
        out = f"{kind.lower()}_{self.count}"
        self.nodes.append(helper.make_node(kind, inputs, [out], **attributes))
        return out

    def dense(self, x, prefix):
        # Burn's Linear stores its weight as [in, out]: x @ W + b.
        return self.op("Add", [self.op("MatMul", [x, self.weight(f"{prefix}.weight")]), self.weight(f"{prefix}.bias")])


def twin(graph, config, x):
    """The twin from input value `x`; returns the embedding value."""
    for i, stage in enumerate(config["stages"]):
        prefix = f"twin.stages.{i}"
        k = stage["kernel"]
        # "Same" padding splits k - 1 pixels, the odd one at the end (as Burn and PyTorch do).
        begin, end = ((k - 1) // 2, k - 1 - (k - 1) // 2) if stage["same_padding"] else (0, 0)
        inputs = [x, graph.weight(f"{prefix}.conv.weight")]
        if f"{prefix}.conv.bias" in graph.tensors:
            inputs.append(graph.weight(f"{prefix}.conv.bias"))
        x = graph.op("Conv", inputs, kernel_shape=[k, k], pads=[begin, begin, end, end])
        if config["batch_norm"]:
            norm = [graph.weight(f"{prefix}.norm.{p}") for p in ("gamma", "beta", "running_mean", "running_var")]
            x = graph.op("BatchNormalization", [x, *norm], epsilon=BATCH_NORM_EPSILON)
        x = graph.op("Relu", [x])
        if stage["pool"]:
            x = graph.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = graph.dense(graph.op("Flatten", [x], axis=1), "twin.embed")
    return graph.op("Sigmoid", [x]) if config["sigmoid_embedding"] else x


def model(graph, inputs, outputs, name):
    g = helper.make_graph(graph.nodes, name, inputs, outputs, graph.initializers)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="oneshot")
    m.ir_version = 8  # readable by every onnxruntime of the last years, onnxruntime-web included
    onnx.checker.check_model(m)
    return m


def twin_model(config, tensors):
    s, d = config["input_size"], config["embedding"]
    graph = Graph(tensors)
    out = twin(graph, config, "images")
    graph.nodes.append(helper.make_node("Identity", [out], ["embeddings"]))
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["n", 1, s, s])
    embeddings = helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["n", d])
    return model(graph, [images], [embeddings], "twin")


def query_model(config, tensors):
    s, d = config["input_size"], config["embedding"]
    graph = Graph(tensors)
    query = twin(graph, config, "views")  # [v, d]
    graph.initializers.append(numpy_helper.from_array(np.array([-1], np.int64), "minus_one"))
    support_shape = graph.op("Concat", ["minus_one", graph.op("Shape", [query])], axis=0)  # [-1, v, d]
    per_view = graph.op("Reshape", ["supports", support_shape])  # [k, v, d]
    distance = graph.op("Abs", [graph.op("Sub", [query, per_view])])
    head = graph.dense(distance, "head")  # [k, v, 1]
    if config.get("product_head"):  # plus u · (q ⊙ s), u stored as Burn's [d, 1]
        products = graph.op("Mul", [query, per_view])
        head = graph.op("Add", [head, graph.op("MatMul", [products, graph.weight("product.weight")])])
    logits = graph.op("ReduceMean", [head], axes=[1], keepdims=0)  # [k, 1]
    flat = graph.op("Flatten", [graph.op("Sigmoid", [logits])], axis=0)
    graph.initializers.append(numpy_helper.from_array(np.array([0], np.int64), "axis_0"))
    graph.nodes.append(helper.make_node("Squeeze", [flat, "axis_0"], ["scores"]))
    views = helper.make_tensor_value_info("views", TensorProto.FLOAT, ["v", 1, s, s])
    supports = helper.make_tensor_value_info("supports", TensorProto.FLOAT, ["k", "vd"])
    scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["k"])
    return model(graph, [views, supports], [scores], "query")


def export(directory):
    directory = Path(directory)
    config, tensors = load(directory / "weights.safetensors")
    onnx.save(twin_model(config, tensors), directory / "twin.onnx")
    onnx.save(query_model(config, tensors), directory / "query.onnx")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    export(sys.argv[1])
