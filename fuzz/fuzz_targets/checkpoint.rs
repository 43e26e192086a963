//! Any bytes as a weights file (legacy or zip PyTorch checkpoint, safetensors): a state dict or an
//! error naming the problem, never a panic nor an allocation the file's size does not justify.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = max_mnist_core::weights::read_state_dict(data);
});
