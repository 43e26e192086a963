//! Net's forward pass, and the gradient of one log-probability with respect to the input, on the
//! CPU. conv1 (32 channels, 9 taps) is a direct convolution; conv2 and the linear layers, 96 % of the
//! ~12 M multiply-adds, are matrix products ([`crate::matmul`]): conv2 as one product per image of
//! its 576 input patches (im2col) by its 288 × 64 weights.
//!
//! Activations are kept channels-last (`[row][column][channel]`) so that a patch is 3 × 3 runs of
//! 32 contiguous channels; fc1's columns are permuted once, at load, from PyTorch's channels-first
//! flattening to this order, so the features never need transposing.

use std::cell::RefCell;

use super::{C1, C2, CLASSES, FLAT as FEATURES, HIDDEN, KERNEL, POOLED, SIDE, SIDE1, SIDE2};
use crate::matmul::{matmul, Matrix};
use crate::WeightsError;

const TAPS: usize = KERNEL * KERNEL;
/// One conv2 input patch: 3 × 3 taps of 32 channels.
const PATCH: usize = TAPS * C1;
const PIXELS: usize = SIDE * SIDE;
const POSITIONS1: usize = SIDE1 * SIDE1;
const POSITIONS2: usize = SIDE2 * SIDE2;
/// Below this many images, fc1 skips the zero features of each image (after ReLU and pooling, many
/// are): at batch 1 that halves the weights read, the most of fc1's cost. From 4 images on, one
/// matrix product reads them once for all.
const SPARSE_FC1_BELOW: usize = 4;

/// Net's parameters, laid out for this kernel.
#[derive(Debug, Clone)]
pub struct NetKernel {
    /// `[tap][out channel]`.
    conv1_w: Vec<f32>,
    conv1_b: Vec<f32>,
    /// `[tap · 32 + in channel][out channel]`: 288 × 64.
    conv2_w: Vec<f32>,
    conv2_b: Vec<f32>,
    /// `[feature][hidden unit]`, features channels-last: 9216 × 128. As the transpose of a
    /// column-major matrix, `gemm` uses it without repacking its 4.7 MB at every call.
    fc1_w: Vec<f32>,
    fc1_b: Vec<f32>,
    /// PyTorch's `[class][hidden unit]`.
    fc2_w: Vec<f32>,
    fc2_b: Vec<f32>,
}

/// Net's parameters in PyTorch's layouts, flat.
pub struct NetParameters<'a> {
    pub conv1_w: &'a [f32],
    pub conv1_b: &'a [f32],
    pub conv2_w: &'a [f32],
    pub conv2_b: &'a [f32],
    pub fc1_w: &'a [f32],
    pub fc1_b: &'a [f32],
    pub fc2_w: &'a [f32],
    pub fc2_b: &'a [f32],
}

/// What the forward pass writes through for one image (about 0.9 MB), kept per thread: allocated
/// afresh at every call, buffers this size come back from the allocator as new pages, and the
/// page faults cost more than the arithmetic of a small batch.
struct Workspace {
    conv1_patches: Vec<f32>,
    relu1: Vec<f32>,
    patches: Vec<f32>,
    conv2: Vec<f32>,
}

impl Workspace {
    fn new() -> Self {
        Self {
            conv1_patches: vec![0f32; POSITIONS1 * TAPS],
            relu1: vec![0f32; POSITIONS1 * C1],
            patches: vec![0f32; POSITIONS2 * PATCH],
            conv2: vec![0f32; POSITIONS2 * C2],
        }
    }
}

thread_local! {
    static WORKSPACE: RefCell<Workspace> = RefCell::new(Workspace::new());
}

/// What the backward pass needs of one forward pass.
struct Trace {
    /// conv1's output after ReLU, channels-last.
    relu1: Vec<f32>,
    /// For each pooled conv2 output (channels-last), the position (0..576) of its maximum, or
    /// `None` where ReLU cut it to zero.
    pooled_from: Vec<Option<u16>>,
    /// fc1's output before ReLU.
    hidden: Vec<f32>,
    log_probabilities: [f32; CLASSES],
}

impl NetKernel {
    pub fn new(p: &NetParameters<'_>) -> Result<Self, WeightsError> {
        let sizes = [
            ("conv1.weight", p.conv1_w.len(), C1 * TAPS),
            ("conv1.bias", p.conv1_b.len(), C1),
            ("conv2.weight", p.conv2_w.len(), C2 * PATCH),
            ("conv2.bias", p.conv2_b.len(), C2),
            ("fc1.weight", p.fc1_w.len(), HIDDEN * FEATURES),
            ("fc1.bias", p.fc1_b.len(), HIDDEN),
            ("fc2.weight", p.fc2_w.len(), CLASSES * HIDDEN),
            ("fc2.bias", p.fc2_b.len(), CLASSES),
        ];
        if let Some((name, found, expected)) = sizes
            .into_iter()
            .find(|(_, found, expected)| found != expected)
        {
            return Err(WeightsError::WrongShape {
                architecture: "Net",
                name: name.to_owned(),
                expected: vec![expected],
                found: vec![found],
            });
        }
        let mut conv1_w = vec![0f32; TAPS * C1];
        for (co, taps) in p.conv1_w.chunks_exact(TAPS).enumerate() {
            for (tap, &w) in taps.iter().enumerate() {
                conv1_w[tap * C1 + co] = w;
            }
        }
        let mut conv2_w = vec![0f32; PATCH * C2];
        for (co, per_out) in p.conv2_w.chunks_exact(C1 * TAPS).enumerate() {
            for (ci, taps) in per_out.chunks_exact(TAPS).enumerate() {
                for (tap, &w) in taps.iter().enumerate() {
                    conv2_w[(tap * C1 + ci) * C2 + co] = w;
                }
            }
        }
        // PyTorch flattens [channel][row][column]; the features here are [row][column][channel].
        let mut fc1_w = vec![0f32; FEATURES * HIDDEN];
        for (unit, row) in p.fc1_w.chunks_exact(FEATURES).enumerate() {
            for (torch_index, &w) in row.iter().enumerate() {
                let (channel, position) = (
                    torch_index / (POOLED * POOLED),
                    torch_index % (POOLED * POOLED),
                );
                fc1_w[(position * C2 + channel) * HIDDEN + unit] = w;
            }
        }
        Ok(Self {
            conv1_w,
            conv1_b: p.conv1_b.to_vec(),
            conv2_w,
            conv2_b: p.conv2_b.to_vec(),
            fc1_w,
            fc1_b: p.fc1_b.to_vec(),
            fc2_w: p.fc2_w.to_vec(),
            fc2_b: p.fc2_b.to_vec(),
        })
    }

    /// The log-probabilities of each normalised 28 × 28 image.
    pub fn log_probabilities(&self, images: &[&[f32; PIXELS]]) -> Vec<[f32; CLASSES]> {
        let mut features = vec![0f32; images.len() * FEATURES];
        WORKSPACE.with_borrow_mut(|w| {
            for (image, out) in images.iter().zip(features.chunks_exact_mut(FEATURES)) {
                self.conv1_relu(image, &mut w.conv1_patches, &mut w.relu1);
                self.conv2(&w.relu1, &mut w.patches, &mut w.conv2);
                self.relu_pool(&w.conv2, out);
            }
        });
        let hidden = self.fc1(&features, images.len());
        hidden
            .chunks_exact(HIDDEN)
            .map(|hidden| self.fc2_log_softmax(hidden))
            .collect()
    }

    /// conv1 → ReLU into `out`, channels-last: 26 × 26 × 32, as patches (676 × 9) × weights (9 × 32).
    fn conv1_relu(&self, image: &[f32; PIXELS], patches: &mut [f32], out: &mut [f32]) {
        for (position, patch) in patches.chunks_exact_mut(TAPS).enumerate() {
            let (y, x) = (position / SIDE1, position % SIDE1);
            for (ky, taps) in patch.chunks_exact_mut(KERNEL).enumerate() {
                let from = (y + ky) * SIDE + x;
                taps.copy_from_slice(&image[from..from + KERNEL]);
            }
        }
        for channels in out.chunks_exact_mut(C1) {
            channels.copy_from_slice(&self.conv1_b);
        }
        matmul(
            out,
            Matrix::rows(patches, POSITIONS1, TAPS),
            Matrix::rows(&self.conv1_w, TAPS, C1),
            true,
        );
        for value in out.iter_mut() {
            *value = value.max(0.0);
        }
    }

    /// conv2 without its bias: `out` = patches (576 × 288) × weights (288 × 64).
    fn conv2(&self, relu1: &[f32], patches: &mut [f32], out: &mut [f32]) {
        for (position, patch) in patches.chunks_exact_mut(PATCH).enumerate() {
            let (y, x) = (position / SIDE2, position % SIDE2);
            for (tap, run) in patch.chunks_exact_mut(C1).enumerate() {
                let from = ((y + tap / KERNEL) * SIDE1 + x + tap % KERNEL) * C1;
                run.copy_from_slice(&relu1[from..from + C1]);
            }
        }
        matmul(
            out,
            Matrix::rows(patches, POSITIONS2, PATCH),
            Matrix::rows(&self.conv2_w, PATCH, C2),
            false,
        );
    }

    /// Bias, ReLU and 2 × 2 max-pooling of conv2's output, channels-last, into `features`.
    /// (Adding the bias after the max gives the same bits: rounding is monotonic.)
    fn relu_pool(&self, conv2: &[f32], features: &mut [f32]) {
        for (pooled, out) in features.chunks_exact_mut(C2).enumerate() {
            let corners = pool_corners(pooled);
            let mut best = [f32::NEG_INFINITY; C2];
            for at in corners {
                for (b, &v) in best.iter_mut().zip(&conv2[at * C2..(at + 1) * C2]) {
                    *b = b.max(v);
                }
            }
            for ((o, b), &bias) in out.iter_mut().zip(best).zip(&self.conv2_b) {
                *o = (b + bias).max(0.0);
            }
        }
    }

    /// [`Self::relu_pool`], also giving where each pooled value came from (see [`Trace`]). Ties go
    /// to the first maximum in the window, as in PyTorch.
    fn relu_pool_traced(&self, conv2: &[f32]) -> (Vec<f32>, Vec<Option<u16>>) {
        let mut features = Vec::with_capacity(FEATURES);
        let mut from = Vec::with_capacity(FEATURES);
        for pooled in 0..POOLED * POOLED {
            let corners = pool_corners(pooled);
            for (co, &bias) in self.conv2_b.iter().enumerate() {
                let mut best = (f32::NEG_INFINITY, 0);
                for at in corners {
                    let value = conv2[at * C2 + co];
                    if value > best.0 {
                        best = (value, at);
                    }
                }
                let value = best.0 + bias;
                if value > 0.0 {
                    features.push(value);
                    from.push(u16::try_from(best.1).ok());
                } else {
                    features.push(0.0);
                    from.push(None);
                }
            }
        }
        (features, from)
    }

    /// fc1 before ReLU, for `batch` rows of features.
    fn fc1(&self, features: &[f32], batch: usize) -> Vec<f32> {
        let mut hidden = vec![0f32; batch * HIDDEN];
        for row in hidden.chunks_exact_mut(HIDDEN) {
            row.copy_from_slice(&self.fc1_b);
        }
        if batch < SPARSE_FC1_BELOW {
            for (row, features) in hidden
                .chunks_exact_mut(HIDDEN)
                .zip(features.chunks_exact(FEATURES))
            {
                let mut acc = [0f32; HIDDEN];
                for (&f, weights) in features.iter().zip(self.fc1_w.chunks_exact(HIDDEN)) {
                    if f != 0.0 {
                        for (a, &w) in acc.iter_mut().zip(weights) {
                            *a += f * w;
                        }
                    }
                }
                for (h, a) in row.iter_mut().zip(acc) {
                    *h += a;
                }
            }
            return hidden;
        }
        matmul(
            &mut hidden,
            Matrix::rows(features, batch, FEATURES),
            Matrix::rows(&self.fc1_w, FEATURES, HIDDEN),
            true,
        );
        hidden
    }

    /// ReLU → fc2 → log_softmax, from fc1's output.
    fn fc2_log_softmax(&self, hidden: &[f32]) -> [f32; CLASSES] {
        let mut logits = [0f32; CLASSES];
        for ((logit, weights), &bias) in logits
            .iter_mut()
            .zip(self.fc2_w.chunks_exact(HIDDEN))
            .zip(&self.fc2_b)
        {
            *logit = bias
                + weights
                    .iter()
                    .zip(hidden)
                    .map(|(w, h)| w * h.max(0.0))
                    .sum::<f32>();
        }
        log_softmax(&logits)
    }

    fn traced(&self, image: &[f32; PIXELS], patches: &mut [f32], conv2: &mut [f32]) -> Trace {
        let mut relu1 = vec![0f32; POSITIONS1 * C1];
        self.conv1_relu(image, &mut vec![0f32; POSITIONS1 * TAPS], &mut relu1);
        self.conv2(&relu1, patches, conv2);
        let (features, pooled_from) = self.relu_pool_traced(conv2);
        let hidden = self.fc1(&features, 1);
        let log_probabilities = self.fc2_log_softmax(&hidden);
        Trace {
            relu1,
            pooled_from,
            hidden,
            log_probabilities,
        }
    }

    /// Σᵢ weightᵢ · ∂log_probability[target]/∂input at alphaᵢ · input: the path integral of
    /// Integrated Gradients with a zero baseline, for quadrature `nodes` of (alpha, weight).
    ///
    /// conv1 is linear, so the weighted gradients with respect to its output are summed over the
    /// path and taken back through it once.
    pub fn path_gradient(
        &self,
        image: &[f32; PIXELS],
        target: usize,
        nodes: &[(f64, f64)],
    ) -> Vec<f32> {
        let mut patches = vec![0f32; POSITIONS2 * PATCH];
        let mut conv2 = vec![0f32; POSITIONS2 * C2];
        let mut d_patches = vec![0f32; POSITIONS2 * PATCH];
        let mut weighted_d_conv1 = vec![0f32; POSITIONS1 * C1];
        for &(alpha, weight) in nodes {
            let scaled: [f32; PIXELS] = image.map(|v| alpha as f32 * v);
            let trace = self.traced(&scaled, &mut patches, &mut conv2);
            let d_conv1 = self.conv1_output_gradient(&trace, target, &mut d_patches);
            for ((sum, d), &relu) in weighted_d_conv1.iter_mut().zip(d_conv1).zip(&trace.relu1) {
                if relu > 0.0 {
                    *sum += weight as f32 * d;
                }
            }
        }
        let mut d_image = vec![0f32; PIXELS];
        for (position, d_out) in weighted_d_conv1.chunks_exact(C1).enumerate() {
            let (y, x) = (position / SIDE1, position % SIDE1);
            for (tap, weights) in self.conv1_w.chunks_exact(C1).enumerate() {
                let d: f32 = d_out.iter().zip(weights).map(|(g, w)| g * w).sum();
                d_image[(y + tap / KERNEL) * SIDE + x + tap % KERNEL] += d;
            }
        }
        d_image
    }

    /// ∂log_probability[target]/∂(conv1's output before ReLU, where it is positive), channels-last.
    fn conv1_output_gradient(
        &self,
        trace: &Trace,
        target: usize,
        d_patches: &mut [f32],
    ) -> Vec<f32> {
        // log_softmax: ∂/∂logit_k = [k = target] − softmax_k.
        let d_logits: [f32; CLASSES] = std::array::from_fn(|k| {
            f32::from(u8::from(k == target)) - trace.log_probabilities[k].exp()
        });
        let mut d_hidden = vec![0f32; HIDDEN];
        for (j, d) in d_hidden.iter_mut().enumerate() {
            if trace.hidden[j] > 0.0 {
                *d = d_logits
                    .iter()
                    .zip(self.fc2_w.chunks_exact(HIDDEN))
                    .map(|(g, row)| g * row[j])
                    .sum();
            }
        }
        let mut d_features = vec![0f32; FEATURES];
        matmul(
            &mut d_features,
            Matrix::rows(&d_hidden, 1, HIDDEN),
            Matrix::transposed(&self.fc1_w, HIDDEN, FEATURES),
            false,
        );
        let mut d_conv2 = vec![0f32; POSITIONS2 * C2];
        for (i, (&d, from)) in d_features.iter().zip(&trace.pooled_from).enumerate() {
            if let Some(position) = from {
                d_conv2[usize::from(*position) * C2 + i % C2] = d;
            }
        }
        matmul(
            d_patches,
            Matrix::rows(&d_conv2, POSITIONS2, C2),
            Matrix::transposed(&self.conv2_w, C2, PATCH),
            false,
        );
        let mut d_conv1 = vec![0f32; POSITIONS1 * C1];
        for (position, patch) in d_patches.chunks_exact(PATCH).enumerate() {
            let (y, x) = (position / SIDE2, position % SIDE2);
            for (tap, run) in patch.chunks_exact(C1).enumerate() {
                let to = ((y + tap / KERNEL) * SIDE1 + x + tap % KERNEL) * C1;
                for (d, &g) in d_conv1[to..to + C1].iter_mut().zip(run) {
                    *d += g;
                }
            }
        }
        d_conv1
    }
}

/// The four conv2 positions (row-major, 0..576) of pooled position `pooled` (0..144).
fn pool_corners(pooled: usize) -> [usize; 4] {
    let (py, px) = (pooled / POOLED, pooled % POOLED);
    [(0, 0), (0, 1), (1, 0), (1, 1)].map(|(dy, dx)| (2 * py + dy) * SIDE2 + 2 * px + dx)
}

/// `log_softmax`, computed as PyTorch does: x − max − ln Σ exp(x − max).
pub fn log_softmax(logits: &[f32; CLASSES]) -> [f32; CLASSES] {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
    let log_sum = sum.ln();
    logits.map(|l| l - max - log_sum)
}
