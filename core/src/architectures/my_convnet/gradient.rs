//! MyConvNet's forward pass in plain Rust, keeping what its backward pass needs, and the analytic
//! gradient of one logit with respect to the input. (candle 0.11's autograd scales max-pool
//! gradients by 1/4 per pooling layer, so it cannot give Captum's attributions.) Max-pool ties go
//! to the first maximum in the window, as in PyTorch.

use super::layers::MyConvNet;
use super::{
    C1, C2, CLASSES as NUM_CLASSES, FLAT, HIDDEN, KERNEL, PIXELS as IMAGE_PIXELS, POOLED1,
    SIDE as IMAGE_SIDE, SIDE1, SIDE2,
};
use crate::{CoreError, WeightsError};

/// MyConvNet's parameters as flat arrays.
#[derive(Debug, Clone)]
pub struct PlainNet {
    conv1_w: Vec<f32>,
    conv1_b: Vec<f32>,
    conv2_w: Vec<f32>,
    conv2_b: Vec<f32>,
    fc1_w: Vec<f32>,
    fc1_b: Vec<f32>,
    fc2_w: Vec<f32>,
    fc2_b: Vec<f32>,
}

/// The activations of one forward pass that the backward pass reads.
struct Trace {
    conv1: Vec<f32>,
    pool1_from: Vec<usize>,
    conv2: Vec<f32>,
    pool2_from: Vec<usize>,
    hidden: Vec<f32>,
    logits: [f32; NUM_CLASSES],
}

impl PlainNet {
    pub fn new(net: &MyConvNet) -> Result<Self, CoreError> {
        let [conv1_w, conv1_b, conv2_w, conv2_b, fc1_w, fc1_b, fc2_w, fc2_b] = net.parameters()?;
        let sizes = [
            (conv1_w.len(), C1 * KERNEL * KERNEL),
            (conv1_b.len(), C1),
            (conv2_w.len(), C2 * C1 * KERNEL * KERNEL),
            (conv2_b.len(), C2),
            (fc1_w.len(), HIDDEN * FLAT),
            (fc1_b.len(), HIDDEN),
            (fc2_w.len(), NUM_CLASSES * HIDDEN),
            (fc2_b.len(), NUM_CLASSES),
        ];
        if sizes.iter().any(|(found, expected)| found != expected) {
            return Err(WeightsError::Malformed(
                "MyConvNet's parameters have unexpected sizes".into(),
            )
            .into());
        }
        Ok(Self {
            conv1_w,
            conv1_b,
            conv2_w,
            conv2_b,
            fc1_w,
            fc1_b,
            fc2_w,
            fc2_b,
        })
    }

    /// The ten logits of one normalised image.
    pub fn logits(&self, input: &[f32; IMAGE_PIXELS]) -> [f32; NUM_CLASSES] {
        let conv1 = conv(input, &self.conv1_w, &self.conv1_b, 1, C1, IMAGE_SIDE);
        self.forward_from_conv1(conv1).logits
    }

    /// Σᵢ weightᵢ · ∂logit[target]/∂input at alphaᵢ · input: the path integral of Integrated
    /// Gradients with a zero baseline, for quadrature `nodes` of (alpha, weight).
    ///
    /// conv1 is linear, so conv1(α·x) = α·conv1₀(x) + bias is computed once, and the weighted sum
    /// of the conv1-output gradients goes back through conv1 once, after the loop.
    pub fn path_gradient(
        &self,
        input: &[f32; IMAGE_PIXELS],
        target: usize,
        nodes: &[(f64, f64)],
    ) -> Vec<f32> {
        let no_bias = [0f32; C1];
        let linear = conv(input, &self.conv1_w, &no_bias, 1, C1, IMAGE_SIDE);
        let mut weighted_d_conv1 = vec![0f32; linear.len()];
        for &(alpha, weight) in nodes {
            let conv1: Vec<f32> = linear
                .chunks_exact(SIDE1 * SIDE1)
                .zip(&self.conv1_b)
                .flat_map(|(plane, &bias)| plane.iter().map(move |&v| alpha as f32 * v + bias))
                .collect();
            let trace = self.forward_from_conv1(conv1);
            let d_conv1 = self.conv1_output_gradient(&trace, target);
            for (sum, d) in weighted_d_conv1.iter_mut().zip(d_conv1) {
                *sum += weight as f32 * d;
            }
        }
        conv_input_gradient(&weighted_d_conv1, &self.conv1_w, 1, C1, IMAGE_SIDE)
    }

    /// ∂logit[target]/∂conv1-output, from a forward trace.
    fn conv1_output_gradient(&self, trace: &Trace, target: usize) -> Vec<f32> {
        let mut d_hidden = [0f32; HIDDEN];
        for (j, d) in d_hidden.iter_mut().enumerate() {
            if trace.hidden[j] > 0.0 {
                *d = self.fc2_w[target * HIDDEN + j];
            }
        }
        let mut d_pool2 = [0f32; FLAT];
        for (j, &d) in d_hidden.iter().enumerate() {
            if d != 0.0 {
                let row = &self.fc1_w[j * FLAT..(j + 1) * FLAT];
                for (slot, &w) in d_pool2.iter_mut().zip(row) {
                    *slot += d * w;
                }
            }
        }
        let d_conv2 = unpool_relu(&d_pool2, &trace.pool2_from, &trace.conv2);
        let d_pool1 = conv_input_gradient(&d_conv2, &self.conv2_w, C1, C2, POOLED1);
        unpool_relu(&d_pool1, &trace.pool1_from, &trace.conv1)
    }

    fn forward_from_conv1(&self, conv1: Vec<f32>) -> Trace {
        let (pool1, pool1_from) = relu_pool(&conv1, C1, SIDE1);
        let conv2 = conv(&pool1, &self.conv2_w, &self.conv2_b, C1, C2, POOLED1);
        let (pool2, pool2_from) = relu_pool(&conv2, C2, SIDE2);
        let hidden: Vec<f32> = (0..HIDDEN)
            .map(|j| {
                let row = &self.fc1_w[j * FLAT..(j + 1) * FLAT];
                self.fc1_b[j] + row.iter().zip(&pool2).map(|(w, x)| w * x).sum::<f32>()
            })
            .collect();
        let mut logits = [0f32; NUM_CLASSES];
        for (k, logit) in logits.iter_mut().enumerate() {
            let row = &self.fc2_w[k * HIDDEN..(k + 1) * HIDDEN];
            *logit = self.fc2_b[k]
                + row
                    .iter()
                    .zip(&hidden)
                    .map(|(w, h)| w * h.max(0.0))
                    .sum::<f32>();
        }
        Trace {
            conv1,
            pool1_from,
            conv2,
            pool2_from,
            hidden,
            logits,
        }
    }
}

/// A valid 5×5 convolution (cross-correlation, as PyTorch's) of `in_c` planes of `side`² pixels.
/// The innermost loop runs along an output row, so that it vectorises.
fn conv(
    input: &[f32],
    weights: &[f32],
    bias: &[f32],
    in_c: usize,
    out_c: usize,
    side: usize,
) -> Vec<f32> {
    let out_side = side - KERNEL + 1;
    let mut out = vec![0f32; out_c * out_side * out_side];
    for (co, plane) in out.chunks_exact_mut(out_side * out_side).enumerate() {
        plane.fill(bias[co]);
        for ci in 0..in_c {
            for ky in 0..KERNEL {
                for kx in 0..KERNEL {
                    let w = weights[((co * in_c + ci) * KERNEL + ky) * KERNEL + kx];
                    for (y, row) in plane.chunks_exact_mut(out_side).enumerate() {
                        let start = (ci * side + y + ky) * side + kx;
                        for (o, &v) in row.iter_mut().zip(&input[start..start + out_side]) {
                            *o += v * w;
                        }
                    }
                }
            }
        }
    }
    out
}

/// ReLU then 2×2 max-pool; also where each pooled value came from (the first maximum).
fn relu_pool(input: &[f32], channels: usize, side: usize) -> (Vec<f32>, Vec<usize>) {
    let half = side / 2;
    let mut pooled = Vec::with_capacity(channels * half * half);
    let mut from = Vec::with_capacity(channels * half * half);
    for c in 0..channels {
        for y in 0..half {
            for x in 0..half {
                let mut best = (f32::NEG_INFINITY, 0);
                for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    let index = (c * side + 2 * y + dy) * side + 2 * x + dx;
                    let value = input[index].max(0.0);
                    if value > best.0 {
                        best = (value, index);
                    }
                }
                pooled.push(best.0);
                from.push(best.1);
            }
        }
    }
    (pooled, from)
}

/// The gradient through max-pool (to the maxima) and ReLU (where the input was positive).
fn unpool_relu(d_pooled: &[f32], from: &[usize], pre_relu: &[f32]) -> Vec<f32> {
    let mut d = vec![0f32; pre_relu.len()];
    for (&g, &index) in d_pooled.iter().zip(from) {
        if pre_relu[index] > 0.0 {
            d[index] += g;
        }
    }
    d
}

/// The gradient of a valid 5×5 convolution with respect to its input (`in_c` planes of `side`²).
fn conv_input_gradient(
    d_out: &[f32],
    weights: &[f32],
    in_c: usize,
    out_c: usize,
    side: usize,
) -> Vec<f32> {
    let out_side = side - KERNEL + 1;
    let mut d_in = vec![0f32; in_c * side * side];
    for (co, plane) in d_out
        .chunks_exact(out_side * out_side)
        .enumerate()
        .take(out_c)
    {
        for ci in 0..in_c {
            for ky in 0..KERNEL {
                for kx in 0..KERNEL {
                    let w = weights[((co * in_c + ci) * KERNEL + ky) * KERNEL + kx];
                    for (y, row) in plane.chunks_exact(out_side).enumerate() {
                        let start = (ci * side + y + ky) * side + kx;
                        for (d, &g) in d_in[start..start + out_side].iter_mut().zip(row) {
                            *d += g * w;
                        }
                    }
                }
            }
        }
    }
    d_in
}
