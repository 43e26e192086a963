//! Net's forward pass, and the gradient of one log-probability with respect to the input, on the
//! CPU, on one of two paths chosen once, at load:
//! - where the CPU has AVX-512F, the micro-kernels of [`super::avx512`]: conv2 as one implicit
//!   im2col product of the batch's patches by its 288 × 64 weights, tile by tile, and fc1 as one
//!   product of the batch's features by its weights, both skipping the inputs ReLU left at zero;
//! - elsewhere (AVX2 or not x86 at all), matrix products by the `gemm` crate ([`crate::matmul`]):
//!   conv2 as one product per image of its 576 input patches by its weights, fc1 one for the batch.
//!
//! Both sum the same terms; their results differ by rounding only (within 10⁻⁵, tested).
//!
//! Activations are kept channels-last (`[row][column][channel]`) so that a patch is 3 × 3 runs of
//! 32 contiguous channels; fc1's columns are permuted once, at load, from PyTorch's channels-first
//! flattening to this order, so the features never need transposing.

use std::cell::RefCell;

#[cfg(target_arch = "x86_64")]
use super::avx512;
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
/// The most quadrature nodes of an explanation whose forward passes run as one batch: enough to
/// read fc1's weights once for many, few enough to bound what the backward pass keeps (~100 KB a node).
const PATH_BATCH: usize = 16;

/// The instructions the forward pass runs on, chosen once, when the weights are loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Simd {
    /// The micro-kernels of [`super::avx512`].
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// Matrix products by the `gemm` crate, which picks AVX2 + FMA or portable code itself.
    Gemm,
}

impl Simd {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Self::Avx512;
        }
        Self::Gemm
    }
}

/// Net's parameters, laid out for this kernel.
#[derive(Debug, Clone)]
pub struct NetKernel {
    simd: Simd,
    /// `[tap][out channel]`.
    conv1_w: Vec<f32>,
    conv1_b: Vec<f32>,
    /// `[tap · 32 + in channel][out channel]`: 288 × 64.
    conv2_w: Aligned,
    /// `[out channel][tap · 32 + in channel]`: 64 × 288, for the backward pass.
    conv2_wt: Aligned,
    conv2_b: Vec<f32>,
    /// `[feature][hidden unit]`, features channels-last: 9216 × 128. As the transpose of a
    /// column-major matrix, `gemm` uses it without repacking its 4.7 MB at every call.
    fc1_w: Aligned,
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
    /// For each of conv1's positions, a bit mask of its channels above zero.
    positive: Vec<u32>,
    patches: Vec<f32>,
    conv2: Vec<f32>,
}

impl Workspace {
    fn new() -> Self {
        Self {
            conv1_patches: vec![0f32; POSITIONS1 * TAPS],
            relu1: vec![0f32; POSITIONS1 * C1],
            positive: vec![0u32; POSITIONS1],
            patches: vec![0f32; POSITIONS2 * PATCH],
            conv2: vec![0f32; POSITIONS2 * C2],
        }
    }
}

thread_local! {
    static WORKSPACE: RefCell<Workspace> = RefCell::new(Workspace::new());
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
            simd: Simd::detect(),
            conv1_w,
            conv1_b: p.conv1_b.to_vec(),
            conv2_wt: Aligned::new(&transpose(&conv2_w, PATCH, C2)),
            conv2_w: Aligned::new(&conv2_w),
            conv2_b: p.conv2_b.to_vec(),
            fc1_w: Aligned::new(&fc1_w),
            fc1_b: p.fc1_b.to_vec(),
            fc2_w: p.fc2_w.to_vec(),
            fc2_b: p.fc2_b.to_vec(),
        })
    }

    /// The same kernel on `gemm`'s products, as on a CPU without AVX-512.
    #[cfg(test)]
    pub(super) fn on_gemm(&self) -> Self {
        Self {
            simd: Simd::Gemm,
            ..self.clone()
        }
    }

    /// Whether the forward pass runs the AVX-512 micro-kernels.
    #[cfg(test)]
    pub(super) fn uses_avx512(&self) -> bool {
        self.simd != Simd::Gemm
    }

    /// The log-probabilities of each normalised 28 × 28 image.
    pub fn log_probabilities(&self, images: &[&[f32; PIXELS]]) -> Vec<[f32; CLASSES]> {
        let mut features = vec![0f32; images.len() * FEATURES];
        WORKSPACE.with_borrow_mut(|w| {
            for (image, out) in images.iter().zip(features.chunks_exact_mut(FEATURES)) {
                self.convolutions(image, w);
                self.relu_pool(&w.conv2, out);
            }
        });
        let hidden = self.fc1(&features, images.len());
        hidden
            .chunks_exact(HIDDEN)
            .map(|hidden| self.fc2_log_softmax(hidden))
            .collect()
    }

    /// conv1 → ReLU → conv2 (without its bias) of one image, into `w.relu1` and `w.conv2`.
    fn convolutions(&self, image: &[f32; PIXELS], w: &mut Workspace) {
        match self.simd {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Simd::Avx512` is chosen only where the CPU was found to support AVX-512F,
            // the only feature these functions enable.
            Simd::Avx512 => unsafe {
                avx512::conv1_relu(
                    image,
                    &self.conv1_w,
                    &self.conv1_b,
                    &mut w.relu1,
                    &mut w.positive,
                );
                avx512::conv2(&w.relu1, &w.positive, &self.conv2_w, &mut w.conv2);
            },
            Simd::Gemm => {
                self.conv1_relu(image, &mut w.conv1_patches, &mut w.relu1);
                self.conv2(&w.relu1, &mut w.patches, &mut w.conv2);
            }
        }
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
    fn relu_pool_traced(&self, conv2: &[f32], out: &mut [f32]) -> Vec<u16> {
        let mut from = vec![NOT_POOLED; FEATURES];
        #[cfg(target_arch = "x86_64")]
        if self.simd == Simd::Avx512 {
            // SAFETY: `Simd::Avx512` is chosen only where the CPU supports AVX-512F.
            unsafe { avx512::relu_pool_traced(conv2, &self.conv2_b, out, &mut from) };
            return from;
        }
        let mut features = Vec::with_capacity(FEATURES);
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
                    from[features.len()] = u16::try_from(best.1).unwrap_or(NOT_POOLED);
                    features.push(value);
                } else {
                    features.push(0.0);
                }
            }
        }
        out.copy_from_slice(&features);
        from
    }

    /// fc1 before ReLU, for `batch` rows of features.
    fn fc1(&self, features: &[f32], batch: usize) -> Vec<f32> {
        let mut hidden = vec![0f32; batch * HIDDEN];
        for row in hidden.chunks_exact_mut(HIDDEN) {
            row.copy_from_slice(&self.fc1_b);
        }
        #[cfg(target_arch = "x86_64")]
        if self.simd == Simd::Avx512 {
            // SAFETY: `Simd::Avx512` is chosen only where the CPU supports AVX-512F.
            unsafe { avx512::fc1(features, &self.fc1_w, &mut hidden) };
            return hidden;
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

    /// Σᵢ weightᵢ · ∂log_probability[target]/∂input at alphaᵢ · input: the path integral of
    /// Integrated Gradients with a zero baseline, for quadrature `nodes` of (alpha, weight).
    ///
    /// The nodes' forward passes run as batches, fc1's backward product too. conv1 is linear, so
    /// the weighted gradients with respect to its output are summed over the path and taken back
    /// through it once.
    pub fn path_gradient(
        &self,
        image: &[f32; PIXELS],
        target: usize,
        nodes: &[(f64, f64)],
    ) -> Vec<f32> {
        let mut weighted_d_conv1 = vec![0f32; POSITIONS1 * C1];
        for nodes in nodes.chunks(PATH_BATCH) {
            let traces = self.traced(image, nodes);
            let d_hidden = self.hidden_gradients(&traces, target);
            let weights = nodes.iter().map(|&(_, weight)| weight as f32);
            match self.simd {
                #[cfg(target_arch = "x86_64")]
                Simd::Avx512 => {
                    let mut wanted = vec![false; traces.len() * FEATURES];
                    for (trace, wanted) in traces.iter().zip(wanted.chunks_exact_mut(FEATURES)) {
                        for (wanted, from) in wanted.iter_mut().zip(&trace.pooled_from) {
                            *wanted = *from != NOT_POOLED;
                        }
                    }
                    let mut d_features = vec![0f32; traces.len() * FEATURES];
                    // SAFETY: `Simd::Avx512` is chosen only where the CPU supports AVX-512F.
                    unsafe {
                        avx512::fc1_backward(&d_hidden, &self.fc1_w, &wanted, &mut d_features)
                    };
                    for ((trace, d_features), weight) in traces
                        .iter()
                        .zip(d_features.chunks_exact(FEATURES))
                        .zip(weights)
                    {
                        let (d_conv2, carries) = conv2_output_gradient(trace, d_features);
                        // SAFETY: as above.
                        unsafe {
                            avx512::conv2_backward(
                                &d_conv2,
                                &carries,
                                &self.conv2_wt,
                                &trace.positive,
                                weight,
                                &mut weighted_d_conv1,
                            )
                        };
                    }
                }
                Simd::Gemm => {
                    let mut d_features = vec![0f32; traces.len() * FEATURES];
                    matmul(
                        &mut d_features,
                        Matrix::rows(&d_hidden, traces.len(), HIDDEN),
                        Matrix::transposed(&self.fc1_w, HIDDEN, FEATURES),
                        false,
                    );
                    for ((trace, d_features), weight) in traces
                        .iter()
                        .zip(d_features.chunks_exact(FEATURES))
                        .zip(weights)
                    {
                        let d_conv1 = self.conv1_output_gradient(trace, d_features);
                        for (position, (sums, d)) in weighted_d_conv1
                            .chunks_exact_mut(C1)
                            .zip(d_conv1.chunks_exact(C1))
                            .enumerate()
                        {
                            let positive = trace.positive[position];
                            for (channel, (sum, d)) in sums.iter_mut().zip(d).enumerate() {
                                if positive >> channel & 1 == 1 {
                                    *sum += weight * d;
                                }
                            }
                        }
                    }
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

    /// The forward passes at alpha · `image` for each node's alpha, with what the backward pass
    /// needs of them.
    fn traced(&self, image: &[f32; PIXELS], nodes: &[(f64, f64)]) -> Vec<Trace> {
        let mut features = vec![0f32; nodes.len() * FEATURES];
        let mut traces: Vec<Trace> = WORKSPACE.with_borrow_mut(|w| {
            nodes
                .iter()
                .zip(features.chunks_exact_mut(FEATURES))
                .map(|(&(alpha, _), out)| {
                    let scaled: [f32; PIXELS] = image.map(|v| alpha as f32 * v);
                    self.convolutions(&scaled, w);
                    let pooled_from = self.relu_pool_traced(&w.conv2, out);
                    Trace {
                        positive: positive_channels(&w.relu1),
                        pooled_from,
                        hidden: Vec::new(),
                        log_probabilities: [0.0; CLASSES],
                    }
                })
                .collect()
        });
        let hidden = self.fc1(&features, nodes.len());
        for (trace, hidden) in traces.iter_mut().zip(hidden.chunks_exact(HIDDEN)) {
            trace.log_probabilities = self.fc2_log_softmax(hidden);
            trace.hidden = hidden.to_vec();
        }
        traces
    }

    /// ∂log_probability[target]/∂(fc1's output before ReLU) for each trace, one row of 128 each.
    fn hidden_gradients(&self, traces: &[Trace], target: usize) -> Vec<f32> {
        let mut d_hidden = vec![0f32; traces.len() * HIDDEN];
        for (trace, d_hidden) in traces.iter().zip(d_hidden.chunks_exact_mut(HIDDEN)) {
            // log_softmax: ∂/∂logit_k = [k = target] − softmax_k.
            let d_logits: [f32; CLASSES] = std::array::from_fn(|k| {
                f32::from(u8::from(k == target)) - trace.log_probabilities[k].exp()
            });
            for (j, d) in d_hidden.iter_mut().enumerate() {
                if trace.hidden[j] > 0.0 {
                    *d = d_logits
                        .iter()
                        .zip(self.fc2_w.chunks_exact(HIDDEN))
                        .map(|(g, row)| g * row[j])
                        .sum();
                }
            }
        }
        d_hidden
    }

    /// ∂log_probability[target]/∂(conv1's output after ReLU), channels-last, from the gradients
    /// of the features. Only the conv2 positions some feature was pooled from carry a gradient (at
    /// most one in four), so only their rows of the product by conv2's weights are computed.
    fn conv1_output_gradient(&self, trace: &Trace, d_features: &[f32]) -> Vec<f32> {
        let (d_conv2, carries) = conv2_output_gradient(trace, d_features);
        let positions: Vec<usize> = (0..POSITIONS2).filter(|&p| carries[p]).collect();
        let mut d_rows = Vec::with_capacity(positions.len() * C2);
        for &p in &positions {
            d_rows.extend_from_slice(&d_conv2[p * C2..(p + 1) * C2]);
        }
        let mut d_patches = vec![0f32; positions.len() * PATCH];
        matmul(
            &mut d_patches,
            Matrix::rows(&d_rows, positions.len(), C2),
            Matrix::rows(&self.conv2_wt, C2, PATCH),
            false,
        );
        let mut d_conv1 = vec![0f32; POSITIONS1 * C1];
        for (&position, patch) in positions.iter().zip(d_patches.chunks_exact(PATCH)) {
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

/// ∂log_probability[target]/∂(conv2's output), channels-last, from the gradients of the features
/// (max-pooling's and ReLU's backward pass), and which of conv2's positions carry any.
fn conv2_output_gradient(trace: &Trace, d_features: &[f32]) -> (Vec<f32>, [bool; POSITIONS2]) {
    let mut d_conv2 = vec![0f32; POSITIONS2 * C2];
    let mut carries = [false; POSITIONS2];
    for (i, (&d, from)) in d_features.iter().zip(&trace.pooled_from).enumerate() {
        if *from != NOT_POOLED {
            let position = usize::from(*from);
            d_conv2[position * C2 + i % C2] = d;
            carries[position] = true;
        }
    }
    (d_conv2, carries)
}

/// In [`Trace::pooled_from`], a feature that ReLU cut to zero, so that no gradient flows from it.
pub(super) const NOT_POOLED: u16 = u16::MAX;

/// What the backward pass needs of one forward pass.
struct Trace {
    /// For each of conv1's positions, a bit mask of its channels above zero after ReLU.
    positive: Vec<u32>,
    /// For each pooled conv2 output (channels-last), the position (0..576) of its maximum, or
    /// [`NOT_POOLED`] where ReLU cut it to zero.
    pooled_from: Vec<u16>,
    /// fc1's output before ReLU.
    hidden: Vec<f32>,
    log_probabilities: [f32; CLASSES],
}

/// For each position of `relu1` (channels-last), a bit mask of its channels above zero.
fn positive_channels(relu1: &[f32]) -> Vec<u32> {
    relu1
        .chunks_exact(C1)
        .map(|channels| {
            channels
                .iter()
                .enumerate()
                .fold(0u32, |bits, (c, &v)| bits | u32::from(v > 0.0) << c)
        })
        .collect()
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

/// The transpose of the row-major `rows × cols` matrix in `values`.
fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols * rows)
        .map(|i| values[(i % rows) * cols + i / rows])
        .collect()
}

/// A slice of `f32` starting on a 64-byte boundary, so that no 16-lane load of a row of 16, 64 or
/// 128 values straddles two cache lines.
#[derive(Debug)]
struct Aligned {
    buffer: Vec<f32>,
    start: usize,
    len: usize,
}

impl Aligned {
    const LANES: usize = 16;

    fn new(values: &[f32]) -> Self {
        let mut buffer = vec![0f32; values.len() + Self::LANES - 1];
        let start = buffer.as_ptr().align_offset(64).min(Self::LANES - 1);
        buffer[start..start + values.len()].copy_from_slice(values);
        Self {
            buffer,
            start,
            len: values.len(),
        }
    }
}

impl Clone for Aligned {
    fn clone(&self) -> Self {
        Self::new(self)
    }
}

impl std::ops::Deref for Aligned {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        &self.buffer[self.start..self.start + self.len]
    }
}
