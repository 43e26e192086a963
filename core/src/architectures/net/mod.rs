//! Net, TorchServe's MNIST example network: conv1(1→32, 3×3) → ReLU → conv2(32→64, 3×3) → ReLU →
//! max-pool 2 → 9216 → fc1(128) → ReLU → fc2(10) → log_softmax, on images normalised as
//! (x/255 − 0.1307)/0.3081. (Its dropout is inactive in inference.)

#[cfg(target_arch = "x86_64")]
mod avx512;
pub mod kernel;

use std::sync::Arc;

use super::{digit_classifier_info, flat, Architecture, ModelIdentity, StateDict, TensorSpec};
use crate::explain::{self, Explanation, TORCHSERVE_IMAGE_STEPS};
use crate::image_input::{ImageLimits, ImagePipeline, Normalisation};
use crate::model::{
    DefaultTarget, ExplanationInfo, Model, ModelInfo, ModelInput, ModelOutput, NetworkInfo,
    OutputKind, RawInput,
};
use crate::CoreError;
use kernel::{NetKernel, NetParameters};

/// Side of the input image, and its pixels.
pub use crate::image_input::{MNIST_PIXELS as PIXELS, MNIST_SIDE as SIDE};
/// Side of the convolution kernels.
pub const KERNEL: usize = 3;
/// Channels out of conv1.
pub const C1: usize = 32;
/// Channels out of conv2.
pub const C2: usize = 64;
/// Side of conv1's output (26).
pub const SIDE1: usize = SIDE - KERNEL + 1;
/// Side of conv2's output (24).
pub const SIDE2: usize = SIDE1 - KERNEL + 1;
/// Side after max-pooling (12).
pub const POOLED: usize = SIDE2 / 2;
/// fc1's inputs (9216).
pub const FLAT: usize = C2 * POOLED * POOLED;
/// Outputs of fc1.
pub const HIDDEN: usize = 128;
/// The ten digits.
pub const CLASSES: usize = 10;

/// Every tensor of its state dict.
pub const TENSORS: [TensorSpec; 8] = [
    ("conv1.weight", &[C1, 1, KERNEL, KERNEL]),
    ("conv1.bias", &[C1]),
    ("conv2.weight", &[C2, C1, KERNEL, KERNEL]),
    ("conv2.bias", &[C2]),
    ("fc1.weight", &[HIDDEN, FLAT]),
    ("fc1.bias", &[HIDDEN]),
    ("fc2.weight", &[CLASSES, HIDDEN]),
    ("fc2.bias", &[CLASSES]),
];

pub const DESCRIPTION: &str = "TorchServe's MNIST example network (Net: two 3×3 convolutions, max-pooling, two linear layers) that recognises a handwritten digit, 0 to 9, in an image";
pub const SOURCE: &str =
    "https://github.com/pytorch/serve/tree/master/examples/image_classifier/mnist";

/// `ToTensor()` + `Normalize((0.1307,), (0.3081,))`, as the example's handler does.
pub const NORMALISATION: Normalisation = Normalisation {
    mean: 0.1307,
    std: 0.3081,
};
/// The explanation of the example's handler: its `explain_handle` explains class 0 unless the
/// request names a target, with `get_insights`' 15 steps.
pub const EXPLANATION: ExplanationInfo = ExplanationInfo {
    steps: TORCHSERVE_IMAGE_STEPS,
    target: DefaultTarget::Class(0),
};
const MULTIPLY_ADDS: u64 = (SIDE1 * SIDE1 * C1 * KERNEL * KERNEL
    + SIDE2 * SIDE2 * C2 * C1 * KERNEL * KERNEL
    + FLAT * HIDDEN
    + HIDDEN * CLASSES) as u64;

/// The network, as [`super::ARCHITECTURES`] lists it.
pub struct Net;

impl Architecture for Net {
    fn network(&self) -> NetworkInfo {
        NetworkInfo {
            name: "Net".into(),
            origin: "TorchServe's MNIST example".into(),
            description: DESCRIPTION.into(),
            source: SOURCE.into(),
        }
    }

    fn tensors(&self) -> &'static [TensorSpec] {
        &TENSORS
    }

    fn build(
        &self,
        state_dict: &StateDict,
        identity: ModelIdentity,
        limits: ImageLimits,
    ) -> Result<Arc<dyn Model>, CoreError> {
        Ok(Arc::new(NetModel::new(state_dict, identity, limits)?))
    }
}

/// Net served: its kernel and the image pipeline.
pub struct NetModel {
    info: ModelInfo,
    kernel: NetKernel,
    pipeline: ImagePipeline,
}

impl NetModel {
    pub fn new(
        state_dict: &StateDict,
        identity: ModelIdentity,
        limits: ImageLimits,
    ) -> Result<Self, CoreError> {
        let [conv1_w, conv1_b, conv2_w, conv2_b, fc1_w, fc1_b, fc2_w, fc2_b] =
            TENSORS.map(|(name, _)| flat(state_dict, name));
        let kernel = NetKernel::new(&NetParameters {
            conv1_w: &conv1_w?,
            conv1_b: &conv1_b?,
            conv2_w: &conv2_w?,
            conv2_b: &conv2_b?,
            fc1_w: &fc1_w?,
            fc1_b: &fc1_b?,
            fc2_w: &fc2_w?,
            fc2_b: &fc2_b?,
        })?;
        Ok(Self {
            info: digit_classifier_info(
                identity,
                Net.network(),
                OutputKind::LogProbabilities,
                MULTIPLY_ADDS,
                EXPLANATION,
            )?,
            kernel,
            pipeline: ImagePipeline {
                limits,
                normalisation: NORMALISATION,
            },
        })
    }
}

impl Model for NetModel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn pre_process(&self, raw: RawInput<'_>) -> Result<ModelInput, CoreError> {
        self.pipeline.pre_process(raw, &self.info.input)
    }

    fn predict(&self, batch: &[ModelInput]) -> Result<Vec<ModelOutput>, CoreError> {
        let images = batch
            .iter()
            .map(ModelInput::values::<PIXELS>)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self
            .kernel
            .log_probabilities(&images)
            .into_iter()
            .map(|output| ModelOutput(output.to_vec()))
            .collect())
    }

    fn explain(
        &self,
        input: &ModelInput,
        target: usize,
        steps: usize,
    ) -> Result<Explanation, CoreError> {
        let pixels = input.values()?;
        explain::integrated_gradients(
            &self.info,
            pixels,
            target,
            steps,
            |nodes| self.kernel.path_gradient(pixels, target, nodes),
            |x| self.kernel.log_probabilities(&[x]).concat(),
        )
    }

    fn explanation_png(
        &self,
        input: &ModelInput,
        explanation: &Explanation,
    ) -> Result<Vec<u8>, CoreError> {
        self.pipeline.heatmap_png(input, &explanation.attributions)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Module, Tensor, D};
    use candle_nn::{Conv2d, Conv2dConfig, Linear};

    use super::*;
    use crate::architectures::test_support::{noise, random_state_dict};

    /// Net on candle's layers, as the example's `forward`.
    fn candle_forward(state_dict: &StateDict, images: &Tensor) -> Vec<Vec<f32>> {
        let tensor = |name: &str| state_dict[name].clone();
        let conv = |layer: &str| {
            Conv2d::new(
                tensor(&format!("{layer}.weight")),
                Some(tensor(&format!("{layer}.bias"))),
                Conv2dConfig::default(),
            )
        };
        let linear = |layer: &str| {
            Linear::new(
                tensor(&format!("{layer}.weight")),
                Some(tensor(&format!("{layer}.bias"))),
            )
        };
        let forward = || -> candle_core::Result<Vec<Vec<f32>>> {
            let xs = conv("conv1").forward(images)?.relu()?;
            let xs = conv("conv2").forward(&xs)?.relu()?.max_pool2d(2)?;
            let xs = linear("fc1").forward(&xs.flatten_from(1)?)?.relu()?;
            let logits = linear("fc2").forward(&xs)?;
            candle_nn::ops::log_softmax(&logits, D::Minus1)?.to_vec2::<f32>()
        };
        forward().expect("candle forward")
    }

    fn model(seed: u64) -> (NetModel, StateDict) {
        let state_dict = random_state_dict(&TENSORS, seed);
        let identity = ModelIdentity {
            name: "mnist".into(),
            version: "1.0".into(),
            labels: None,
        };
        let model = NetModel::new(&state_dict, identity, ImageLimits::default()).expect("model");
        (model, state_dict)
    }

    fn random_images(seed: u64, count: usize) -> Vec<ModelInput> {
        let mut next = noise(seed);
        (0..count)
            .map(|_| ModelInput((0..PIXELS).map(|_| next().abs() * 2.5 - 0.4).collect()))
            .collect()
    }

    #[test]
    fn the_kernel_agrees_with_candles_layers_at_every_batch_size() {
        let (model, state_dict) = model(11);
        for count in [1, 3, 5] {
            let inputs = random_images(count as u64, count);
            let values: Vec<f32> = inputs.iter().flat_map(|i| i.0.clone()).collect();
            let batch = Tensor::from_vec(values, (count, 1, SIDE, SIDE), &Device::Cpu)
                .expect("batch")
                .to_dtype(DType::F32)
                .expect("f32");
            let reference = candle_forward(&state_dict, &batch);
            let outputs = model.predict(&inputs).expect("predicts");
            for (output, reference) in outputs.iter().zip(&reference) {
                for (a, b) in output.0.iter().zip(reference) {
                    assert!((a - b).abs() <= 1e-4, "{a} vs candle {b}");
                }
            }
        }
    }

    /// Digit-like images: the background's normalised zero (−0.42) around a block of noise in a
    /// random place, so that ReLU leaves whole regions at zero as on MNIST, and the inputs a tile
    /// skips differ from image to image.
    fn digit_like_images(seed: u64, count: usize) -> Vec<ModelInput> {
        let mut next = noise(seed);
        let background = -NORMALISATION.mean / NORMALISATION.std;
        (0..count)
            .map(|_| {
                let top = (next().abs() * 16.0) as usize;
                let left = (next().abs() * 16.0) as usize;
                let (height, width) = (
                    4 + (next().abs() * 8.0) as usize,
                    3 + (next().abs() * 9.0) as usize,
                );
                ModelInput(
                    (0..PIXELS)
                        .map(|i| {
                            let (y, x) = (i / SIDE, i % SIDE);
                            if (top..top + height).contains(&y) && (left..left + width).contains(&x)
                            {
                                next().abs() * 3.2 + background
                            } else {
                                background
                            }
                        })
                        .collect(),
                )
            })
            .collect()
    }

    /// Half digit-like images, half dense noise, interleaved.
    fn mixed_images(seed: u64, count: usize) -> Vec<ModelInput> {
        let digits = digit_like_images(seed, count);
        let dense = random_images(seed + 1, count);
        (0..count)
            .map(|i| if i % 2 == 0 { &digits[i] } else { &dense[i] }.clone())
            .collect()
    }

    fn pixels(inputs: &[ModelInput]) -> Vec<&[f32; PIXELS]> {
        inputs
            .iter()
            .map(|input| input.values::<PIXELS>().expect("784 values"))
            .collect()
    }

    #[test]
    fn the_avx512_and_gemm_paths_agree_at_every_batch_size() {
        let (model, _) = model(21);
        if !model.kernel.uses_avx512() {
            eprintln!("note: this CPU has no AVX-512F, so only the gemm path runs here");
        }
        let gemm = model.kernel.on_gemm();
        for count in [1, 3, 64] {
            let inputs = mixed_images(count as u64 * 31, count);
            let images = pixels(&inputs);
            let fast = model.kernel.log_probabilities(&images);
            let reference = gemm.log_probabilities(&images);
            for (fast, reference) in fast.iter().zip(&reference) {
                for (a, b) in fast.iter().zip(reference) {
                    assert!((a - b).abs() <= 1e-5, "batch {count}: {a} vs gemm's {b}");
                }
            }
        }
        let input = &digit_like_images(5, 1)[0];
        let image = input.values::<PIXELS>().expect("784");
        let nodes: Vec<(f64, f64)> = (1..=20).map(|i| (f64::from(i) / 20.0, 0.05)).collect();
        let fast = model.kernel.path_gradient(image, 4, &nodes);
        let reference = gemm.path_gradient(image, 4, &nodes);
        let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(scale > 0.0);
        for (a, b) in fast.iter().zip(&reference) {
            assert!(
                (a - b).abs() <= 1e-5 * scale,
                "{a} vs gemm's {b} (largest {scale})"
            );
        }
    }

    #[test]
    fn a_batch_gives_each_image_what_it_gives_alone() {
        let (model, _) = model(22);
        let inputs = mixed_images(77, 64);
        let images = pixels(&inputs);
        for kernel in [model.kernel.clone(), model.kernel.on_gemm()] {
            let batch = kernel.log_probabilities(&images);
            for (image, batched) in images.iter().zip(&batch) {
                let alone = kernel.log_probabilities(&[image])[0];
                if kernel.uses_avx512() {
                    // Each image's sums run in the same order whatever shares its tile.
                    assert_eq!(&alone, batched);
                } else {
                    for (a, b) in alone.iter().zip(batched) {
                        assert!((a - b).abs() <= 1e-5, "{a} alone, {b} in the batch");
                    }
                }
            }
        }
    }

    #[test]
    fn extreme_pixels_neither_panic_nor_disturb_their_neighbours_in_a_batch() {
        let (model, _) = model(23);
        let mut inputs: Vec<ModelInput> = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e30, -1e30]
            .iter()
            .map(|&v| ModelInput(vec![v; PIXELS]))
            .collect();
        let mut one_hot = digit_like_images(3, 1).remove(0);
        one_hot.0[400] = f32::INFINITY;
        inputs.push(one_hot);
        let sane = digit_like_images(4, 1).remove(0);
        inputs.push(sane.clone());
        let images = pixels(&inputs);
        for kernel in [model.kernel.clone(), model.kernel.on_gemm()] {
            let outputs = kernel.log_probabilities(&images);
            assert_eq!(outputs.len(), images.len());
            let alone = kernel.log_probabilities(&pixels(std::slice::from_ref(&sane)))[0];
            let last = outputs[images.len() - 1];
            assert!(last.iter().all(|v| v.is_finite()), "{last:?}");
            for (a, b) in alone.iter().zip(&last) {
                assert!((a - b).abs() <= 1e-5, "{a} alone, {b} after extreme images");
            }
            for image in &images {
                let gradient = kernel.path_gradient(image, 3, &[(0.5, 0.5), (1.0, 0.5)]);
                assert_eq!(gradient.len(), PIXELS);
            }
        }
    }

    #[test]
    fn the_gradient_matches_finite_differences() {
        let (model, _) = model(5);
        let input = random_images(99, 1).remove(0);
        let pixels = input.values::<PIXELS>().expect("784");
        let target = 3;
        // One node at alpha 1 with weight 1: the plain gradient at the input.
        let gradient = model.kernel.path_gradient(pixels, target, &[(1.0, 1.0)]);
        let output = |x: &[f32; PIXELS]| f64::from(model.kernel.log_probabilities(&[x])[0][target]);
        let step = 1e-2f32;
        for index in [100, 300, 406, 512, 700] {
            let (mut up, mut down) = (*pixels, *pixels);
            up[index] += step;
            down[index] -= step;
            let numeric = (output(&up) - output(&down)) / (2.0 * f64::from(step));
            let analytic = f64::from(gradient[index]);
            assert!(
                (numeric - analytic).abs() <= 2e-3 * (1.0 + analytic.abs()),
                "pixel {index}: analytic {analytic}, numeric {numeric}"
            );
        }
    }

    #[test]
    fn explanations_converge_and_refuse_bad_arguments() {
        let (model, _) = model(8);
        let input = random_images(7, 1).remove(0);
        let coarse = model.explain(&input, 2, 8).expect("explains");
        let fine = model.explain(&input, 2, 128).expect("explains");
        assert!(fine.convergence_delta.abs() <= coarse.convergence_delta.abs() + 1e-3);
        assert!(
            fine.convergence_delta.abs() < 0.05,
            "{}",
            fine.convergence_delta
        );
        for (target, steps) in [(10, 15), (0, 0), (0, 513)] {
            assert!(matches!(
                model.explain(&input, target, steps),
                Err(CoreError::Argument(_))
            ));
        }
    }
}
