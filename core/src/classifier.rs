//! The model wrapper the HTTP layer talks to: pre-process → predict (batched) → post-process.

use std::path::Path;

use candle_core::{Device, Module, Tensor};
use serde::Serialize;

use crate::convnet::MyConvNet;
use crate::explain::{self, Explanation};
use crate::gradient::PlainNet;
use crate::image_input::{self, ImageLimits};
use crate::weights;
use crate::{CoreError, InputError, IMAGE_PIXELS, NUM_CLASSES};

/// One normalised 28×28 image, row-major: what the network takes.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInput(pub Box<[f32; IMAGE_PIXELS]>);

impl ModelInput {
    /// Applies the MNIST input transform to 28×28 grayscale pixels.
    pub fn from_pixels(pixels: &[u8; IMAGE_PIXELS]) -> Self {
        Self(Box::new(pixels.map(image_input::normalise_pixel)))
    }

    /// A numeric tensor instance (KServe): 784 intensities, row-major, in 0..1 as `ToTensor` makes
    /// them, or in 0..255 when any value exceeds 1 (SPEC input rule 4).
    pub fn from_intensities(values: &[f64]) -> Result<Self, InputError> {
        if values.len() != IMAGE_PIXELS {
            return Err(InputError::TensorSize {
                found: values.len(),
            });
        }
        if let Some(&bad) = values.iter().find(|v| !(0.0..=255.0).contains(*v)) {
            return Err(InputError::TensorValue { value: bad });
        }
        let scale = if values.iter().any(|&v| v > 1.0) {
            255.0
        } else {
            1.0
        };
        let mut input = Box::new([0f32; IMAGE_PIXELS]);
        for (slot, &value) in input.iter_mut().zip(values) {
            *slot = ((value / scale - 0.5) / 0.5) as f32;
        }
        Ok(Self(input))
    }
}

/// The network's ten raw outputs, one per digit.
pub type Logits = [f32; NUM_CLASSES];

/// One digit with its softmax probability.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prediction {
    pub prediction: u8,
    pub probability: f32,
}

/// What serving needs of a digit model. The HTTP layer knows only this trait.
pub trait DigitModel: Send + Sync {
    /// Decodes an uploaded image and turns it into the network's input.
    fn pre_process(&self, image: &[u8]) -> Result<ModelInput, CoreError>;

    /// Runs the whole batch through the network in one forward pass.
    fn predict(&self, batch: &[ModelInput]) -> Result<Vec<Logits>, CoreError>;

    /// Integrated Gradients of class `target` at `input`, with `steps` Gauss–Legendre points.
    fn explain(
        &self,
        input: &ModelInput,
        target: usize,
        steps: usize,
    ) -> Result<Explanation, CoreError>;

    /// The `top_k` most probable digits, most probable first.
    fn post_process(&self, logits: &Logits, top_k: usize) -> Vec<Prediction> {
        top_predictions(logits, top_k)
    }
}

/// MyConvNet with the upstream input transform.
pub struct MnistClassifier {
    net: MyConvNet,
    /// The same network for the analytic gradients of explanations.
    plain: PlainNet,
    limits: ImageLimits,
    device: Device,
}

impl MnistClassifier {
    /// Loads the weights at `path` (legacy or zip `.pt`/`.pth`, or `.safetensors`).
    pub fn load(path: &Path, limits: ImageLimits) -> Result<Self, CoreError> {
        Self::from_state_dict(&weights::load_state_dict(path)?, limits)
    }

    /// Builds the network from tensors already read (and checked) by [`weights`].
    pub fn from_state_dict(
        state_dict: &weights::StateDict,
        limits: ImageLimits,
    ) -> Result<Self, CoreError> {
        let net = MyConvNet::from_state_dict(state_dict)?;
        Ok(Self {
            plain: PlainNet::new(&net)?,
            net,
            limits,
            device: Device::Cpu,
        })
    }
}

impl DigitModel for MnistClassifier {
    fn pre_process(&self, image: &[u8]) -> Result<ModelInput, CoreError> {
        let decoded = image_input::decode(image, &self.limits)?;
        Ok(ModelInput::from_pixels(&image_input::to_mnist_pixels(
            decoded,
        )))
    }

    fn explain(
        &self,
        input: &ModelInput,
        target: usize,
        steps: usize,
    ) -> Result<Explanation, CoreError> {
        explain::integrated_gradients(&self.plain, input, target, steps)
    }

    /// By the fused kernel, one image after another on the calling thread (see BENCHMARKS.md).
    fn predict(&self, batch: &[ModelInput]) -> Result<Vec<Logits>, CoreError> {
        let fused = self.net.fused();
        Ok(batch.iter().map(|input| fused.logits(&input.0)).collect())
    }
}

impl MnistClassifier {
    /// The same logits as [`DigitModel::predict`], by candle's generic layers: the reference the
    /// fused kernel is tested against.
    pub fn predict_reference(&self, batch: &[ModelInput]) -> Result<Vec<Logits>, CoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let logits = self.net.forward(&self.batch_tensor(batch)?)?;
        Self::rows(logits)
    }

    /// [`DigitModel::predict`] through candle: the fused kernel applied as a custom op on a tensor.
    pub fn predict_fused_op(&self, batch: &[ModelInput]) -> Result<Vec<Logits>, CoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let logits = self.net.forward_fused(&self.batch_tensor(batch)?)?;
        Self::rows(logits)
    }

    fn batch_tensor(&self, batch: &[ModelInput]) -> Result<Tensor, CoreError> {
        let values: Vec<f32> = batch
            .iter()
            .flat_map(|input| input.0.iter().copied())
            .collect();
        Ok(Tensor::from_vec(
            values,
            (batch.len(), IMAGE_PIXELS),
            &self.device,
        )?)
    }

    fn rows(logits: Tensor) -> Result<Vec<Logits>, CoreError> {
        logits
            .to_vec2::<f32>()?
            .into_iter()
            .map(|row| {
                Logits::try_from(row.as_slice()).map_err(|_| {
                    CoreError::Inference(candle_core::Error::Msg(format!(
                        "the network returned {} outputs, expected {NUM_CLASSES}",
                        row.len()
                    )))
                })
            })
            .collect()
    }
}

/// Softmax probabilities of the logits, computed stably.
pub fn softmax(logits: &Logits) -> [f32; NUM_CLASSES] {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps = logits.map(|l| (l - max).exp());
    let sum: f32 = exps.iter().sum();
    exps.map(|e| e / sum)
}

/// The `top_k` (clamped to 1..=10) most probable digits, most probable first; ties keep digit order.
pub fn top_predictions(logits: &Logits, top_k: usize) -> Vec<Prediction> {
    let probabilities = softmax(logits);
    let mut ranked: Vec<Prediction> = probabilities
        .iter()
        .zip(0u8..)
        .map(|(&probability, prediction)| Prediction {
            prediction,
            probability,
        })
        .collect();
    ranked.sort_by(|a, b| b.probability.total_cmp(&a.probability));
    ranked.truncate(top_k.clamp(1, NUM_CLASSES));
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_instances_in_0_1_or_0_255_match_the_image_path() {
        let pixels: [u8; IMAGE_PIXELS] = std::array::from_fn(|i| (i * 7 % 256) as u8);
        let from_image = ModelInput::from_pixels(&pixels);
        let unit: Vec<f64> = pixels.iter().map(|&p| f64::from(p) / 255.0).collect();
        let bytes: Vec<f64> = pixels.iter().map(|&p| f64::from(p)).collect();
        for values in [unit, bytes] {
            let input = ModelInput::from_intensities(&values).expect("valid");
            let worst = input
                .0
                .iter()
                .zip(from_image.0.iter())
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-6, "{worst}");
        }
    }

    #[test]
    fn numeric_instances_of_the_wrong_size_or_range_are_refused() {
        assert!(matches!(
            ModelInput::from_intensities(&[0.5; 783]),
            Err(InputError::TensorSize { found: 783 })
        ));
        for bad in [-0.1, 256.0, f64::NAN, f64::INFINITY] {
            let mut values = vec![0.0; IMAGE_PIXELS];
            values[100] = bad;
            assert!(
                matches!(
                    ModelInput::from_intensities(&values),
                    Err(InputError::TensorValue { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn softmax_sums_to_one_and_survives_large_logits() {
        let p = softmax(&[1000.0, 999.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1000.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((p[0] - 1.0 / (1.0 + (-1.0f32).exp())).abs() < 1e-6);
        assert_eq!(p[9], 0.0);
    }

    #[test]
    fn top_predictions_are_sorted_and_clamped() {
        let logits = [0.0, 5.0, 1.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let top: Vec<u8> = top_predictions(&logits, 3)
            .iter()
            .map(|p| p.prediction)
            .collect();
        assert_eq!(top, [1, 4, 2]);
        assert_eq!(top_predictions(&logits, 0).len(), 1);
        assert_eq!(top_predictions(&logits, 99).len(), 10);
    }
}
