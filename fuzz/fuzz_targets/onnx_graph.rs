//! Any bytes as an ONNX file, through the checks that run before ONNX Runtime sees it: a graph that
//! passes or an error naming the problem, never a panic nor an allocation the file does not hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use max_mnist_core::onnx::graph;

fuzz_target!(|data: &[u8]| {
    if graph::is_onnx(data) {
        let _ = graph::check(data);
    }
});
