"""The native peers of `oneshot bench`, on the very same network, weights and inputs:
ONNX Runtime (CPU) for inference, PyTorch (CPU) for the training step.

Before timing anything, each peer must reproduce this crate's outputs from `oneshot export`'s
reference.safetensors to 1e-4: ONNX Runtime the per-view embeddings and the 20-way scores,
PyTorch the embeddings, scores and the pair loss before and after one Adam step.

Usage: python native.py DIR [--repetitions N] [--train-steps N]
(DIR: `oneshot export`'s output, with twin.onnx and query.onnx from onnx_export.py)
Prints one JSON object: {"peers": [{"stack", "rows": [{key, what, timing, pairs_per_second}]}],
"agreement": {...largest absolute differences...}}.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from safetensors.numpy import load_file

import onnx_export

TOLERANCE = 1e-4
REFERENCE_LEARNING_RATE = 1e-4  # src/export.rs
ADAM_EPSILON = 1e-5  # Burn's AdamConfig default (PyTorch's is 1e-8)


def timing(warmup, repetitions, work):
    for _ in range(warmup):
        work()
    times = []
    for _ in range(max(1, repetitions)):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1e3)
    times.sort()
    at = lambda q: times[round((len(times) - 1) * q)]
    return {"median": at(0.5), "p10": at(0.1), "p90": at(0.9), "repetitions": len(times)}


def row(key, what, t, pairs=None):
    return {"key": key, "what": what, "timing": t, "pairs_per_second": pairs}


def check(name, got, expected, agreement):
    difference = float(np.max(np.abs(np.asarray(got, np.float64) - np.asarray(expected, np.float64))))
    agreement[name] = difference
    if not difference <= TOLERANCE:
        sys.exit(f"{name}: differs from oneshot's output by {difference:.2e} (> {TOLERANCE:g}); not timing it")


class Siamese(torch.nn.Module):
    """The network of src/model.rs in PyTorch, loaded from the exported tensors."""

    def __init__(self, config, tensors):
        super().__init__()
        layers = []
        channels = 1
        for i, stage in enumerate(config["stages"]):
            prefix = f"twin.stages.{i}"
            k = stage["kernel"]
            conv = torch.nn.Conv2d(channels, stage["channels"], k, padding="same" if stage["same_padding"] else 0)
            conv.weight.data = torch.from_numpy(tensors[f"{prefix}.conv.weight"])
            conv.bias.data = torch.from_numpy(tensors[f"{prefix}.conv.bias"])
            layers.append(conv)
            if config["batch_norm"]:
                norm = torch.nn.BatchNorm2d(stage["channels"], eps=onnx_export.BATCH_NORM_EPSILON, momentum=0.1)
                norm.weight.data = torch.from_numpy(tensors[f"{prefix}.norm.gamma"])
                norm.bias.data = torch.from_numpy(tensors[f"{prefix}.norm.beta"])
                norm.running_mean.data = torch.from_numpy(tensors[f"{prefix}.norm.running_mean"])
                norm.running_var.data = torch.from_numpy(tensors[f"{prefix}.norm.running_var"])
                layers.append(norm)
            layers.append(torch.nn.ReLU())
            if stage["pool"]:
                layers.append(torch.nn.MaxPool2d(2))
            channels = stage["channels"]
        layers.append(torch.nn.Flatten())
        self.features = torch.nn.Sequential(*layers)
        self.embed_layer = self.linear(tensors, "twin.embed")
        self.head = self.linear(tensors, "head")
        # The head's product term u · (a ⊙ b), where the architecture has it (no bias).
        self.product = self.linear(tensors, "product", bias=False) if config.get("product_head") else None
        self.sigmoid = config["sigmoid_embedding"]

    @staticmethod
    def linear(tensors, prefix, bias=True):
        weight = tensors[f"{prefix}.weight"]  # Burn: [in, out]
        layer = torch.nn.Linear(*weight.shape, bias=bias)
        layer.weight.data = torch.from_numpy(np.ascontiguousarray(weight.T))
        if bias:
            layer.bias.data = torch.from_numpy(tensors[f"{prefix}.bias"])
        return layer

    def embed(self, images):
        x = self.embed_layer(self.features(images))
        return torch.sigmoid(x) if self.sigmoid else x

    def logits(self, a, b):
        logits = self.head((a - b).abs())
        return logits if self.product is None else logits + self.product(a * b)

    def pair_logits(self, a, b):
        return self.logits(a, b).flatten()


def pair_loss(model, a, b, labels):
    n = a.shape[0]
    embeddings = model.embed(torch.cat([a, b]))
    logits = model.pair_logits(embeddings[:n], embeddings[n:])
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--repetitions", type=int, default=100)
    parser.add_argument("--train-steps", type=int, default=5)
    options = parser.parse_args()
    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    config, tensors = onnx_export.load(options.dir / "weights.safetensors")
    reference = load_file(str(options.dir / "reference.safetensors"))
    views, supports = reference["query_views"], reference["supports"]
    agreement = {}
    peers = []

    # ONNX Runtime: the graphs onnx_export.py built.
    settings = ort.SessionOptions()
    settings.intra_op_num_threads = threads
    twin = ort.InferenceSession(str(options.dir / "twin.onnx"), settings, providers=["CPUExecutionProvider"])
    query = ort.InferenceSession(str(options.dir / "query.onnx"), settings, providers=["CPUExecutionProvider"])
    check("onnxruntime view embeddings", twin.run(None, {"images": views})[0], reference["view_embeddings"], agreement)
    check("onnxruntime scores", query.run(None, {"views": views, "supports": supports})[0], reference["scores"], agreement)
    one = views[:1]
    peers.append({
        "stack": f"ONNX Runtime {ort.__version__} (CPU)",
        "rows": [
            row("embed", "embed one image", timing(3, options.repetitions, lambda: twin.run(None, {"images": one}))),
            row("query", f"20-way query ({len(views)} view{'s' if len(views) > 1 else ''}, cached supports)",
                timing(3, options.repetitions, lambda: query.run(None, {"views": views, "supports": supports}))),
        ],
    })

    # PyTorch: the same network, inference check, then one Adam step against the reference.
    model = Siamese(config, tensors)
    model.eval()
    with torch.no_grad():
        embedded = model.embed(torch.from_numpy(views))
        check("pytorch view embeddings", embedded.numpy(), reference["view_embeddings"], agreement)
        # Each view against the same view of every support (their view embeddings back to back).
        per_view = torch.from_numpy(supports).reshape(len(supports), *embedded.shape)
        logits = model.logits(embedded, per_view).mean(1).flatten()
        check("pytorch scores", torch.sigmoid(logits).numpy(), reference["scores"], agreement)
    model.train()
    a, b = torch.from_numpy(reference["pair_a"]), torch.from_numpy(reference["pair_b"])
    labels = torch.from_numpy(reference["labels"])
    optimizer = torch.optim.Adam(model.parameters(), lr=REFERENCE_LEARNING_RATE, eps=ADAM_EPSILON)
    before = pair_loss(model, a, b, labels)
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = pair_loss(model, a, b, labels)
    check("pytorch training losses", [before.item(), after.item()], reference["losses"], agreement)

    def step():
        optimizer.zero_grad()
        loss = pair_loss(model, a, b, labels)
        loss.backward()
        optimizer.step()

    for group in optimizer.param_groups:
        group["lr"] = 1e-5  # as oneshot bench: the timing, not the weights, matters
    train = timing(1, options.train_steps, step)
    batch = a.shape[0]
    peers.append({
        "stack": f"PyTorch {torch.__version__.split('+')[0]} (CPU)",
        "rows": [row("train", f"training step, {batch} pairs", train, batch / (train["median"] / 1e3))],
    })
    print(json.dumps({"preset": config["preset"].lower(), "threads": threads, "peers": peers, "agreement": agreement}))


if __name__ == "__main__":
    main()
