//! MyConvNet on candle's layers.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Linear};

use super::fused::FusedConvNet;
use super::SIDE;
use crate::architectures::StateDict;
use crate::WeightsError;

/// The candle layers are the reference (and what `Module::forward` runs); the fused kernel computes
/// the same function much faster and serves predictions.
#[derive(Debug, Clone)]
pub struct MyConvNet {
    conv1: Conv2d,
    conv2: Conv2d,
    fc1: Linear,
    fc2: Linear,
    fused: FusedConvNet,
}

impl MyConvNet {
    /// Builds the network from a checked state dict (see [`crate::architectures::Architecture::recognise`]).
    pub fn from_state_dict(state_dict: &StateDict) -> std::result::Result<Self, WeightsError> {
        let tensor = |name: &str| {
            state_dict.get(name).cloned().ok_or_else(|| {
                WeightsError::Malformed(format!("the state dict has no tensor `{name}`"))
            })
        };
        let conv = |layer: &str| -> std::result::Result<Conv2d, WeightsError> {
            Ok(Conv2d::new(
                tensor(&format!("{layer}.weight"))?,
                Some(tensor(&format!("{layer}.bias"))?),
                Conv2dConfig::default(),
            ))
        };
        let linear = |layer: &str| -> std::result::Result<Linear, WeightsError> {
            Ok(Linear::new(
                tensor(&format!("{layer}.weight"))?,
                Some(tensor(&format!("{layer}.bias"))?),
            ))
        };
        let (conv1, conv2, fc1, fc2) = (
            conv("conv1")?,
            conv("conv2")?,
            linear("fc1")?,
            linear("fc2")?,
        );
        let fused = FusedConvNet::new(&flat_parameters(&conv1, &conv2, &fc1, &fc2)?)?;
        Ok(Self {
            conv1,
            conv2,
            fc1,
            fc2,
            fused,
        })
    }

    /// Every parameter as a flat row-major `f32` vector, in the order conv1 weight and bias, conv2
    /// weight and bias, fc1 weight and bias, fc2 weight and bias.
    pub fn parameters(&self) -> Result<[Vec<f32>; 8]> {
        flat_parameters(&self.conv1, &self.conv2, &self.fc1, &self.fc2)
    }

    /// The fused kernel, for callers that hold images as slices rather than tensors.
    pub fn fused(&self) -> &FusedConvNet {
        &self.fused
    }

    /// The same as [`Module::forward`], by the fused kernel: `[N, 784]` or `[N, 1, 28, 28]` f32 on
    /// the CPU → logits `[N, 10]`. No gradients.
    pub fn forward_fused(&self, xs: &Tensor) -> Result<Tensor> {
        xs.apply_op1_no_bwd(&self.fused)
    }
}

fn flat_parameters(
    conv1: &Conv2d,
    conv2: &Conv2d,
    fc1: &Linear,
    fc2: &Linear,
) -> Result<[Vec<f32>; 8]> {
    let flat = |tensor: &Tensor| tensor.flatten_all()?.to_vec1::<f32>();
    let bias = |bias: Option<&Tensor>| match bias {
        Some(bias) => flat(bias),
        None => Ok(Vec::new()),
    };
    Ok([
        flat(conv1.weight())?,
        bias(conv1.bias())?,
        flat(conv2.weight())?,
        bias(conv2.bias())?,
        flat(fc1.weight())?,
        bias(fc1.bias())?,
        flat(fc2.weight())?,
        bias(fc2.bias())?,
    ])
}

impl Module for MyConvNet {
    /// `xs`: normalised images `[N, 1, 28, 28]` (or `[N, 784]`); returns logits `[N, 10]`.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let batch = xs.dim(0)?;
        let xs = xs.reshape((batch, 1, SIDE, SIDE))?;
        let xs = self.conv1.forward(&xs)?.relu()?.max_pool2d(2)?;
        let xs = self.conv2.forward(&xs)?.relu()?.max_pool2d(2)?;
        let xs = xs.flatten_from(1)?;
        let xs = self.fc1.forward(&xs)?.relu()?;
        self.fc2.forward(&xs)
    }
}
