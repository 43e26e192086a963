#!/usr/bin/env python3
"""ONNX Runtime on one thread, for comparison with `cargo bench -p max-mnist-core --bench model`.

Usage: bench-onnxruntime.py ONNX_DIR [--rounds N] [--group digits|onnx|all]

With intra_op_num_threads = 1, inter_op_num_threads = 1, sequential execution and all graph
optimisations (the sessions the server makes), prints the time per call and per image of
- group `digits`: ONNX_DIR/net.onnx (TorchServe's Net) and ONNX_DIR/my_convnet.onnx (MAX's
  MyConvNet) at batch 1 and 64 on random MNIST-normalised inputs, against the native kernels;
- group `onnx`: net.onnx, squeezenet1_1.onnx and mobilenet_v3_small.onnx at batch 1 and 8 on random
  inputs of the graph's shape, named as criterion names them in
  `MNIST_ONNX_DIR=ONNX_DIR cargo bench -p max-mnist-core --bench model -- '^onnx/'`.
Each figure is the median of `--rounds` rounds, a round being as many calls as fill about 0.2 s
(at least one), after a warm-up; the fastest and slowest rounds follow it. Group `onnx` also gives
the median round's CPU time of this thread per call (`time.thread_time`; ONNX Runtime on one
intra-op thread computes on the caller's thread), as criterion's `onnx cpu/…` does, for a machine
that other processes share.

Set-up (a virtual environment under target/, which git ignores):
    python3 -m venv target/ort-venv && target/ort-venv/bin/pip install onnxruntime numpy
"""

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort

DIGIT_MODELS = ["net.onnx", "my_convnet.onnx"]
DIGIT_BATCHES = [1, 64]
ONNX_MODELS = ["net.onnx", "squeezenet1_1.onnx", "mobilenet_v3_small.onnx"]
ONNX_BATCHES = [1, 8]


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def seconds_per_call(run, rounds):
    """The median, fastest and slowest of `rounds` rounds' seconds per call, and the median of
    their CPU seconds per call."""
    warm_up = time.perf_counter()
    for _ in range(20):
        run()
        if time.perf_counter() - warm_up > 1.0:
            break
    start = time.perf_counter()
    calls = 0
    while time.perf_counter() - start < 0.2:
        run()
        calls += 1
    per_round = max(calls, 1)
    times = []
    cpu_times = []
    for _ in range(rounds):
        start, cpu_start = time.perf_counter(), time.thread_time()
        for _ in range(per_round):
            run()
        times.append((time.perf_counter() - start) / per_round)
        cpu_times.append((time.thread_time() - cpu_start) / per_round)
    return statistics.median(times), min(times), max(times), statistics.median(cpu_times)


def duration(seconds):
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    return f"{seconds * 1e3:.3f} ms"


def model_path(onnx_dir, name, names):
    path = os.path.join(onnx_dir, name)
    if not os.path.exists(path):
        sys.exit(f"{path} does not exist: give the directory that holds {', '.join(names)}")
    return path


def digits(onnx_dir, rounds, rng):
    for name in DIGIT_MODELS:
        model = session(model_path(onnx_dir, name, DIGIT_MODELS))
        input_name = model.get_inputs()[0].name
        for batch in DIGIT_BATCHES:
            # MNIST-normalised pixels lie in about [-0.42, 2.82].
            images = (rng.random((batch, 1, 28, 28), dtype=np.float32) * 3.24 - 0.42).astype(np.float32)
            feed = {input_name: images}
            seconds, _, _, _ = seconds_per_call(lambda: model.run(None, feed), rounds)
            print(
                f"{name:16} batch {batch:3}: {seconds * 1e6:9.1f} µs per call, "
                f"{seconds * 1e6 / batch:8.1f} µs per image"
            )


def onnx_graphs(onnx_dir, rounds, rng):
    for name in ONNX_MODELS:
        model = session(model_path(onnx_dir, name, ONNX_MODELS))
        graph_input = model.get_inputs()[0]
        for batch in ONNX_BATCHES:
            shape = [batch] + list(graph_input.shape[1:])
            # Normalised pixels (ImageNet's or MNIST's) lie in about [-2.1, 2.8].
            values = (rng.random(shape, dtype=np.float32) * 4.8 - 2.1).astype(np.float32)
            feed = {graph_input.name: values}
            median, fastest, slowest, cpu = seconds_per_call(lambda: model.run(None, feed), rounds)
            label = f"onnx/{name.removesuffix('.onnx')}/batch {batch}"
            print(
                f"{label:32} {duration(median):>11} per call [{duration(fastest)} .. {duration(slowest)}], "
                f"{duration(median / batch):>11} per image; cpu {duration(cpu):>11} per call, "
                f"{duration(cpu / batch):>11} per image"
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("onnx_dir", help="the directory holding the .onnx files")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--group", choices=["digits", "onnx", "all"], default="all")
    args = parser.parse_args()
    print(f"onnxruntime {ort.__version__}, numpy {np.__version__}, python {platform.python_version()}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs")
    rng = np.random.default_rng(7)
    if args.group in ("digits", "all"):
        digits(args.onnx_dir, args.rounds, rng)
    if args.group in ("onnx", "all"):
        onnx_graphs(args.onnx_dir, args.rounds, rng)


if __name__ == "__main__":
    main()
