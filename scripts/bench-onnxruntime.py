#!/usr/bin/env python3
"""ONNX Runtime on one thread, for comparison with `cargo bench -p max-mnist-core --bench model`.

Usage: bench-onnxruntime.py ONNX_DIR [--rounds N]

Times ONNX_DIR/net.onnx (TorchServe's Net) and ONNX_DIR/my_convnet.onnx (MAX's MyConvNet) at batch 1
and 64 with intra_op_num_threads = 1, inter_op_num_threads = 1 and sequential execution, on random
MNIST-normalised inputs, and prints the time per call and per image. Each figure is the median of
`--rounds` rounds, a round being as many calls as fill about 0.2 s, after a warm-up.

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

MODELS = ["net.onnx", "my_convnet.onnx"]
BATCHES = [1, 64]


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def seconds_per_call(run, rounds):
    for _ in range(20):
        run()
    start = time.perf_counter()
    calls = 0
    while time.perf_counter() - start < 0.2:
        run()
        calls += 1
    per_round = max(calls, 1)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(per_round):
            run()
        times.append((time.perf_counter() - start) / per_round)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("onnx_dir", help="the directory holding net.onnx and my_convnet.onnx")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    print(f"onnxruntime {ort.__version__}, numpy {np.__version__}, python {platform.python_version()}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs")
    rng = np.random.default_rng(7)
    for name in MODELS:
        path = os.path.join(args.onnx_dir, name)
        if not os.path.exists(path):
            sys.exit(f"{path} does not exist: give the directory that holds {', '.join(MODELS)}")
        model = session(path)
        input_name = model.get_inputs()[0].name
        for batch in BATCHES:
            # MNIST-normalised pixels lie in about [-0.42, 2.82].
            images = (rng.random((batch, 1, 28, 28), dtype=np.float32) * 3.24 - 0.42).astype(np.float32)
            feed = {input_name: images}
            seconds = seconds_per_call(lambda: model.run(None, feed), args.rounds)
            print(
                f"{name:16} batch {batch:3}: {seconds * 1e6:9.1f} µs per call, "
                f"{seconds * 1e6 / batch:8.1f} µs per image"
            )


if __name__ == "__main__":
    main()
