//! Any bytes through what `POST /model/predict` does with an upload: bounded decoding, MNIST-style
//! normalisation and inference. It must return a prediction or an input error, never panic, and the
//! probabilities must be finite.
#![no_main]

use std::sync::OnceLock;

use candle_core::{Device, Tensor};
use libfuzzer_sys::fuzz_target;
use max_mnist_core::architectures::my_convnet::{MyConvNetModel, TENSORS};
use max_mnist_core::architectures::StateDict;
use max_mnist_core::{ImageLimits, Model, ModelIdentity, RawInput};

/// Inference does not depend on the weights' values, so fixed small ones stand in for the upstream file.
fn classifier() -> &'static MyConvNetModel {
    static CLASSIFIER: OnceLock<MyConvNetModel> = OnceLock::new();
    CLASSIFIER.get_or_init(|| {
        let state_dict: StateDict = TENSORS
            .iter()
            .map(|(name, shape)| {
                let len: usize = shape.iter().product();
                let values: Vec<f32> = (0..len).map(|i| ((i % 7) as f32 - 3.0) * 0.05).collect();
                let tensor = Tensor::from_vec(values, *shape, &Device::Cpu).expect("tensor");
                (name.to_string(), tensor)
            })
            .collect();
        // Smaller than the service's defaults so that each run stays fast; the checks are the same.
        let limits = ImageLimits {
            max_image_pixels: 4_000_000,
            max_image_side: 8_192,
            max_decoder_bytes: 32 << 20,
        };
        let identity = ModelIdentity {
            name: "mnist".into(),
            version: "1".into(),
            labels: None,
        };
        MyConvNetModel::new(&state_dict, identity, limits).expect("the network builds")
    })
}

fuzz_target!(|data: &[u8]| {
    let model = classifier();
    if let Ok(input) = model.pre_process(RawInput::File(data)) {
        assert!(input.0.iter().all(|v| (-1.0..=1.0).contains(v)));
        let outputs = model.predict(std::slice::from_ref(&input)).expect("inference");
        let classification = model.post_process(&outputs[0]);
        assert!(classification.probabilities.iter().all(|p| p.is_finite()));
    }
});
