//! Any bytes as a model file (legacy or zip PyTorch checkpoint, safetensors, TorchServe .mar): a
//! recognised network or an error naming the problem, never a panic nor an allocation the file's
//! size does not justify.
#![no_main]

use libfuzzer_sys::fuzz_target;
use max_mnist_core::{archive, recognise, weights};

fuzz_target!(|data: &[u8]| {
    if let Ok(tensors) = weights::read_tensors(data) {
        let _ = recognise(tensors);
    }
    if let Ok(true) = archive::is_model_archive(data) {
        let _ = archive::read(data, 1 << 20);
    }
});
