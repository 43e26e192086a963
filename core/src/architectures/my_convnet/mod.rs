//! MyConvNet, MAX-PyTorch-MNIST's network: conv1(1→2, 5×5) → ReLU → max-pool 2 → conv2(2→6, 5×5) →
//! ReLU → max-pool 2 → 96 → fc1(32) → ReLU → fc2(10), on images normalised as (x/255 − 0.5)/0.5.
//!
//! Predictions run on a fused kernel ([`fused`]); candle's layers ([`layers`]) are the reference it
//! is tested against; explanations use an analytic backward pass ([`gradient`]).

pub mod fused;
pub mod gradient;
pub mod layers;

use std::sync::Arc;

use candle_core::{Device, Module, Tensor};

use super::{digit_classifier_info, Architecture, ModelIdentity, StateDict, TensorSpec};
use crate::explain::{self, Explanation, TORCHSERVE_IMAGE_STEPS};
use crate::image_input::{ImageLimits, ImagePipeline, Normalisation};
use crate::model::{
    DefaultTarget, ExplanationInfo, Model, ModelInfo, ModelInput, ModelOutput, NetworkInfo,
    OutputKind, RawInput,
};
use crate::CoreError;

/// Side of the input image, and its pixels.
pub use crate::image_input::{MNIST_PIXELS as PIXELS, MNIST_SIDE as SIDE};
/// Side of the convolution kernels.
pub const KERNEL: usize = 5;
/// Channels out of conv1.
pub const C1: usize = 2;
/// Channels out of conv2.
pub const C2: usize = 6;
/// Side of conv1's output (24).
pub const SIDE1: usize = SIDE - KERNEL + 1;
/// Side after the first max-pool (12).
pub const POOLED1: usize = SIDE1 / 2;
/// Side of conv2's output (8).
pub const SIDE2: usize = POOLED1 - KERNEL + 1;
/// Side after the second max-pool (4).
pub const POOLED2: usize = SIDE2 / 2;
/// Inputs of fc1 (96).
pub const FLAT: usize = C2 * POOLED2 * POOLED2;
/// Outputs of fc1.
pub const HIDDEN: usize = 32;
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

pub const DESCRIPTION: &str = "A PyTorch convolutional network (MyConvNet) trained on MNIST that recognises a handwritten digit, 0 to 9, in an image";
pub const SOURCE: &str = "https://github.com/xuhdev/max-pytorch-mnist";

/// torchvision's `ToTensor()` + `Normalize((0.5,), (0.5,))`, as MAX's training and serving did.
pub const NORMALISATION: Normalisation = Normalisation {
    mean: 0.5,
    std: 0.5,
};
/// MAX never served explanations; its digit is explained, in TorchServe's and KServe's routes,
/// with the steps of TorchServe's image handlers and of the predicted class, as MAX's own route does.
pub const EXPLANATION: ExplanationInfo = ExplanationInfo {
    steps: TORCHSERVE_IMAGE_STEPS,
    target: DefaultTarget::Predicted,
};
/// Multiply-adds of one forward pass.
const MULTIPLY_ADDS: u64 = (C1 * SIDE1 * SIDE1 * KERNEL * KERNEL
    + C2 * SIDE2 * SIDE2 * C1 * KERNEL * KERNEL
    + HIDDEN * FLAT
    + CLASSES * HIDDEN) as u64;

/// The network, as [`super::ARCHITECTURES`] lists it.
pub struct MyConvNet;

impl Architecture for MyConvNet {
    fn network(&self) -> NetworkInfo {
        NetworkInfo {
            name: "MyConvNet".into(),
            origin: "MAX PyTorch MNIST".into(),
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
        Ok(Arc::new(MyConvNetModel::new(state_dict, identity, limits)?))
    }
}

/// MyConvNet served: its layers (with the fused kernel), its analytic gradient, the image pipeline.
pub struct MyConvNetModel {
    info: ModelInfo,
    net: layers::MyConvNet,
    plain: gradient::PlainNet,
    pipeline: ImagePipeline,
}

impl MyConvNetModel {
    pub fn new(
        state_dict: &StateDict,
        identity: ModelIdentity,
        limits: ImageLimits,
    ) -> Result<Self, CoreError> {
        let net = layers::MyConvNet::from_state_dict(state_dict)?;
        let info = digit_classifier_info(
            identity,
            MyConvNet.network(),
            OutputKind::Logits,
            MULTIPLY_ADDS,
            EXPLANATION,
        )?;
        Ok(Self {
            plain: gradient::PlainNet::new(&net)?,
            net,
            info,
            pipeline: ImagePipeline {
                limits,
                normalisation: NORMALISATION,
            },
        })
    }

    /// The same outputs as [`Model::predict`], by candle's generic layers: the reference the fused
    /// kernel is tested against.
    pub fn predict_reference(&self, batch: &[ModelInput]) -> Result<Vec<ModelOutput>, CoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        Self::rows(self.net.forward(&self.batch_tensor(batch)?)?)
    }

    /// [`Model::predict`] through candle: the fused kernel applied as a custom op on a tensor.
    pub fn predict_fused_op(&self, batch: &[ModelInput]) -> Result<Vec<ModelOutput>, CoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        Self::rows(self.net.forward_fused(&self.batch_tensor(batch)?)?)
    }

    fn batch_tensor(&self, batch: &[ModelInput]) -> Result<Tensor, CoreError> {
        let values: Vec<f32> = batch
            .iter()
            .map(|input| input.values::<PIXELS>().map(|image| image.as_slice()))
            .collect::<Result<Vec<_>, _>>()?
            .concat();
        Ok(Tensor::from_vec(
            values,
            (batch.len(), PIXELS),
            &Device::Cpu,
        )?)
    }

    fn rows(logits: Tensor) -> Result<Vec<ModelOutput>, CoreError> {
        Ok(logits
            .to_vec2::<f32>()?
            .into_iter()
            .map(ModelOutput)
            .collect())
    }
}

impl Model for MyConvNetModel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn pre_process(&self, raw: RawInput<'_>) -> Result<ModelInput, CoreError> {
        self.pipeline.pre_process(raw, &self.info.input)
    }

    /// By the fused kernel, one image after another on the calling thread (see BENCHMARKS.md).
    fn predict(&self, batch: &[ModelInput]) -> Result<Vec<ModelOutput>, CoreError> {
        let fused = self.net.fused();
        batch
            .iter()
            .map(|input| Ok(ModelOutput(fused.logits(input.values()?).to_vec())))
            .collect()
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
            |nodes| self.plain.path_gradient(pixels, target, nodes),
            |x| self.plain.logits(x),
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
