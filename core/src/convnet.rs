//! MyConvNet of MAX-PyTorch-MNIST on candle:
//! conv1(1→2, 5×5) → ReLU → max-pool 2 → conv2(2→6, 5×5) → ReLU → max-pool 2 → 96 → fc1(32) → ReLU → fc2(10).

use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Linear};

use crate::weights::StateDict;
use crate::{WeightsError, IMAGE_SIDE};

#[derive(Debug, Clone)]
pub struct MyConvNet {
    conv1: Conv2d,
    conv2: Conv2d,
    fc1: Linear,
    fc2: Linear,
}

impl MyConvNet {
    /// Builds the network from a checked state dict (see [`crate::weights::load_state_dict`]).
    pub fn from_state_dict(state_dict: &StateDict) -> std::result::Result<Self, WeightsError> {
        let tensor = |name: &str| {
            state_dict
                .get(name)
                .cloned()
                .ok_or_else(|| WeightsError::MissingKey(name.to_owned()))
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
        Ok(Self {
            conv1: conv("conv1")?,
            conv2: conv("conv2")?,
            fc1: linear("fc1")?,
            fc2: linear("fc2")?,
        })
    }
}

impl MyConvNet {
    /// Every parameter as a flat row-major `f32` vector, in the order conv1 weight and bias, conv2
    /// weight and bias, fc1 weight and bias, fc2 weight and bias.
    pub fn parameters(&self) -> Result<[Vec<f32>; 8]> {
        let flat = |tensor: &Tensor| tensor.flatten_all()?.to_vec1::<f32>();
        let bias = |bias: Option<&Tensor>| match bias {
            Some(bias) => flat(bias),
            None => Ok(Vec::new()),
        };
        Ok([
            flat(self.conv1.weight())?,
            bias(self.conv1.bias())?,
            flat(self.conv2.weight())?,
            bias(self.conv2.bias())?,
            flat(self.fc1.weight())?,
            bias(self.fc1.bias())?,
            flat(self.fc2.weight())?,
            bias(self.fc2.bias())?,
        ])
    }
}

impl Module for MyConvNet {
    /// `xs`: normalised images `[N, 1, 28, 28]` (or `[N, 784]`); returns logits `[N, 10]`.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let batch = xs.dim(0)?;
        let xs = xs.reshape((batch, 1, IMAGE_SIDE, IMAGE_SIDE))?;
        let xs = self.conv1.forward(&xs)?.relu()?.max_pool2d(2)?;
        let xs = self.conv2.forward(&xs)?.relu()?.max_pool2d(2)?;
        let xs = xs.flatten_from(1)?;
        let xs = self.fc1.forward(&xs)?.relu()?;
        self.fc2.forward(&xs)
    }
}
