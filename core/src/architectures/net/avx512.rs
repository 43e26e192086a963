//! Net's layers as AVX-512 micro-kernels, for CPUs that have AVX-512F (chosen at run time by
//! [`super::kernel::NetKernel`]). Each keeps a tile of outputs in `zmm` registers, 16 channels to a
//! register, across its sum (fc1: across a block of it), and broadcasts one input at a time.
//!
//! ReLU leaves many of conv2's and fc1's inputs at exactly zero (most of an MNIST digit's
//! background), and a term 0 · w leaves a finite sum unchanged, bit for bit; so the sums here run
//! over the inputs of a tile that are nonzero, found from bit masks, in the same order as the dense
//! sum. Which images share a tile therefore never changes an image's result.
//!
//! Every function checks the lengths of its slices against Net's fixed shapes before it reads
//! through raw pointers; the shapes come from the network, never from a request.

use std::arch::x86_64::*;

use super::{C1, C2, FLAT as FEATURES, HIDDEN, KERNEL, POOLED, SIDE, SIDE1, SIDE2};

const TAPS: usize = KERNEL * KERNEL;
const LANES: usize = 16;
const PIXELS: usize = SIDE * SIDE;
const POSITIONS1: usize = SIDE1 * SIDE1;
const POSITIONS2: usize = SIDE2 * SIDE2;
/// Images per tile of fc1: 6 × 4 registers of accumulators.
const FC1_TILE: usize = 6;
/// fc1's 128 units are done 64 (4 registers) at a time.
const FC1_UNITS: usize = 64;
/// Features per block of fc1's sum: the block's 512 KB of weights stay in L2 while every tile of
/// the batch uses them.
const FC1_BLOCK: usize = 1024;
const _: () = assert!(
    FEATURES.is_multiple_of(FC1_BLOCK)
        && FC1_BLOCK.is_multiple_of(LANES)
        && HIDDEN.is_multiple_of(FC1_UNITS)
);

/// conv1 → ReLU of one image into `out`, channels-last (26 × 26 × 32), and in `positive` for each
/// position a bit mask of its channels above zero.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn conv1_relu(
    image: &[f32; PIXELS],
    weights: &[f32],
    bias: &[f32],
    out: &mut [f32],
    positive: &mut [u32],
) {
    assert!(
        weights.len() == TAPS * C1
            && bias.len() == C1
            && out.len() == POSITIONS1 * C1
            && positive.len() == POSITIONS1
    );
    // SAFETY: every pointer below stays inside the slice it comes from, whose length was checked
    // above: weights 9 × 32, bias 32, out 676 × 32; `image` is 28 × 28 and y + ky, x + kx < 28.
    unsafe {
        let w: [[__m512; 2]; TAPS] = std::array::from_fn(|tap| {
            [0, 1].map(|half| _mm512_loadu_ps(weights.as_ptr().add(tap * C1 + half * LANES)))
        });
        let b = [0, 1].map(|half| _mm512_loadu_ps(bias.as_ptr().add(half * LANES)));
        let zero = _mm512_setzero_ps();
        for y in 0..SIDE1 {
            for x in 0..SIDE1 {
                let mut acc = b;
                for (tap, w) in w.iter().enumerate() {
                    let pixel = *image.get_unchecked((y + tap / KERNEL) * SIDE + x + tap % KERNEL);
                    let pixel = _mm512_set1_ps(pixel);
                    acc[0] = _mm512_fmadd_ps(pixel, w[0], acc[0]);
                    acc[1] = _mm512_fmadd_ps(pixel, w[1], acc[1]);
                }
                let position = y * SIDE1 + x;
                let to = out.as_mut_ptr().add(position * C1);
                let low = _mm512_max_ps(acc[0], zero);
                let high = _mm512_max_ps(acc[1], zero);
                _mm512_storeu_ps(to, low);
                _mm512_storeu_ps(to.add(LANES), high);
                *positive.get_unchecked_mut(position) =
                    u32::from(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(low, zero))
                        | u32::from(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(high, zero)) << 16;
            }
        }
    }
}

/// conv2 without its bias: `out` (24 × 24 × 64, channels-last) from conv1's ReLU output `relu1`
/// (26 × 26 × 32) and its masks `positive` (see [`conv1_relu`]); `weights` is
/// `[tap · 32 + in channel][out channel]`, 288 × 64.
///
/// One tile is a pooling window, 2 × 2 positions × 64 channels in 16 registers; for each tap, the
/// input channels summed are those positive at one of the window's four inputs.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn conv2(relu1: &[f32], positive: &[u32], weights: &[f32], out: &mut [f32]) {
    assert!(
        relu1.len() == POSITIONS1 * C1
            && positive.len() == POSITIONS1
            && weights.len() == TAPS * C1 * C2
            && out.len() == POSITIONS2 * C2
    );
    // SAFETY: with the lengths checked above, every index is in bounds: an input position is
    // (2·py + dy + ky) · 26 + 2·px + dx + kx ≤ 25 · 26 + 25 < 676, a channel < 32 (a bit of a u32),
    // a weight row (tap · 32 + channel) < 288 of 64 values, an output position < 576 of 64 values.
    unsafe {
        for py in 0..POOLED {
            for px in 0..POOLED {
                let corners: [usize; 4] = [(0, 0), (0, 1), (1, 0), (1, 1)]
                    .map(|(dy, dx)| (2 * py + dy) * SIDE1 + 2 * px + dx);
                let mut acc = [[_mm512_setzero_ps(); 4]; 4];
                for tap in 0..TAPS {
                    let shift = tap / KERNEL * SIDE1 + tap % KERNEL;
                    let inputs = corners.map(|c| c + shift);
                    let mut channels = inputs
                        .iter()
                        .fold(0, |bits, &at| bits | *positive.get_unchecked(at));
                    let rows = weights.as_ptr().add(tap * C1 * C2);
                    while channels != 0 {
                        let ci = channels.trailing_zeros() as usize;
                        channels &= channels - 1;
                        let row = rows.add(ci * C2);
                        let w = [0, 1, 2, 3].map(|v| _mm512_loadu_ps(row.add(v * LANES)));
                        for (acc, &at) in acc.iter_mut().zip(&inputs) {
                            let a = _mm512_set1_ps(*relu1.get_unchecked(at * C1 + ci));
                            for (acc, &w) in acc.iter_mut().zip(&w) {
                                *acc = _mm512_fmadd_ps(a, w, *acc);
                            }
                        }
                    }
                }
                for (dy, dx, acc) in [
                    (0, 0, acc[0]),
                    (0, 1, acc[1]),
                    (1, 0, acc[2]),
                    (1, 1, acc[3]),
                ] {
                    let position = (2 * py + dy) * SIDE2 + 2 * px + dx;
                    let to = out.as_mut_ptr().add(position * C2);
                    for (v, acc) in acc.into_iter().enumerate() {
                        _mm512_storeu_ps(to.add(v * LANES), acc);
                    }
                }
            }
        }
    }
}

/// `hidden` (batch × 128, holding fc1's bias on entry) += `features` (batch × 9216) × `weights`
/// (`[feature][unit]`, 9216 × 128): fc1 before ReLU.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn fc1(features: &[f32], weights: &[f32], hidden: &mut [f32]) {
    let batch = hidden.len() / HIDDEN;
    assert!(
        hidden.len() == batch * HIDDEN
            && features.len() == batch * FEATURES
            && weights.len() == FEATURES * HIDDEN
    );
    // The features nonzero in each tile, in order, and where each block of the sum starts in them.
    let tiles = batch.div_ceil(FC1_TILE);
    let mut nonzero = vec![0u32; tiles * FEATURES];
    let mut block_starts = vec![0usize; tiles * (FEATURES / FC1_BLOCK + 1)];
    for tile in 0..tiles {
        let images = tile * FC1_TILE..batch.min((tile + 1) * FC1_TILE);
        let list = &mut nonzero[tile * FEATURES..(tile + 1) * FEATURES];
        let starts =
            &mut block_starts[tile * (FEATURES / FC1_BLOCK + 1)..][..FEATURES / FC1_BLOCK + 1];
        // SAFETY: the CPU supports AVX-512F (this function's contract); `images` lie in the batch.
        unsafe {
            nonzero_features(
                &features[images.start * FEATURES..images.end * FEATURES],
                list,
                starts,
            )
        };
    }
    for block in 0..FEATURES / FC1_BLOCK {
        for tile in 0..tiles {
            let first = tile * FC1_TILE;
            let images = (batch - first).min(FC1_TILE);
            let starts = &block_starts[tile * (FEATURES / FC1_BLOCK + 1)..];
            let ks = &nonzero[tile * FEATURES..][starts[block]..starts[block + 1]];
            let features = &features[first * FEATURES..(first + images) * FEATURES];
            let hidden = &mut hidden[first * HIDDEN..(first + images) * HIDDEN];
            for units in (0..HIDDEN).step_by(FC1_UNITS) {
                // SAFETY: the CPU supports AVX-512F; `fc1_tile` checks the rest.
                unsafe {
                    match images {
                        1 => fc1_tile::<1>(features, ks, weights, hidden, units),
                        2 => fc1_tile::<2>(features, ks, weights, hidden, units),
                        3 => fc1_tile::<3>(features, ks, weights, hidden, units),
                        4 => fc1_tile::<4>(features, ks, weights, hidden, units),
                        5 => fc1_tile::<5>(features, ks, weights, hidden, units),
                        _ => fc1_tile::<FC1_TILE>(features, ks, weights, hidden, units),
                    }
                }
            }
        }
    }
}

/// Writes into `list` the features (0..9216) nonzero in any of the images of `features`, in order,
/// and into `starts[b]` the index in `list` of the first at or after feature `b · FC1_BLOCK`.
#[target_feature(enable = "avx512f")]
unsafe fn nonzero_features(features: &[f32], list: &mut [u32], starts: &mut [usize]) {
    let images = features.len() / FEATURES;
    assert!(
        features.len() == images * FEATURES
            && list.len() == FEATURES
            && starts.len() == FEATURES / FC1_BLOCK + 1
    );
    let mut count = 0usize;
    // SAFETY: feature k + LANES ≤ 9216 in each of the `images` rows; at most k + LANES ≤ 9216
    // indices have been written to `list` (9216 long) when the next 16 at most are added.
    unsafe {
        let zero = _mm512_setzero_ps();
        let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        for k in (0..FEATURES).step_by(LANES) {
            if k % FC1_BLOCK == 0 {
                starts[k / FC1_BLOCK] = count;
            }
            let mut any = 0u16;
            for image in 0..images {
                let v = _mm512_loadu_ps(features.as_ptr().add(image * FEATURES + k));
                any |= _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(v, zero);
            }
            let indices = _mm512_add_epi32(lanes, _mm512_set1_epi32(k as i32));
            _mm512_mask_compressstoreu_epi32(list.as_mut_ptr().add(count).cast(), any, indices);
            count += any.count_ones() as usize;
        }
    }
    starts[FEATURES / FC1_BLOCK] = count;
}

/// For the `R` images of a tile, `hidden[·][units..units + 64]` += Σ over `ks` of
/// feature · weights[feature][units..units + 64].
#[target_feature(enable = "avx512f")]
unsafe fn fc1_tile<const R: usize>(
    features: &[f32],
    ks: &[u32],
    weights: &[f32],
    hidden: &mut [f32],
    units: usize,
) {
    const V: usize = FC1_UNITS / LANES;
    assert!(
        features.len() == R * FEATURES
            && hidden.len() == R * HIDDEN
            && weights.len() == FEATURES * HIDDEN
            && units + V * LANES <= HIDDEN
            && ks.iter().all(|&k| (k as usize) < FEATURES)
    );
    // The rows of `ks` are scattered, so the hardware prefetchers do not see them coming.
    const AHEAD: usize = 8;
    // SAFETY: k < 9216 (checked above), so image · 9216 + k < R · 9216 and the weight row k · 128 +
    // units + 64 ≤ 9216 · 128; a hidden row's units..units + 64 lie within its 128.
    // Prefetching reads nothing.
    unsafe {
        let mut acc: [[__m512; V]; R] = std::array::from_fn(|image| {
            std::array::from_fn(|v| {
                _mm512_loadu_ps(hidden.as_ptr().add(image * HIDDEN + units + v * LANES))
            })
        });
        for (i, &k) in ks.iter().enumerate() {
            if let Some(&next) = ks.get(i + AHEAD) {
                let row = weights.as_ptr().add(next as usize * HIDDEN + units);
                for v in 0..V {
                    _mm_prefetch::<_MM_HINT_T0>(row.add(v * LANES).cast());
                }
            }
            let k = k as usize;
            let row = weights.as_ptr().add(k * HIDDEN + units);
            let w: [__m512; V] = std::array::from_fn(|v| _mm512_loadu_ps(row.add(v * LANES)));
            for (image, acc) in acc.iter_mut().enumerate() {
                let f = _mm512_set1_ps(*features.get_unchecked(image * FEATURES + k));
                for (acc, &w) in acc.iter_mut().zip(&w) {
                    *acc = _mm512_fmadd_ps(f, w, *acc);
                }
            }
        }
        for (image, acc) in acc.into_iter().enumerate() {
            for (v, acc) in acc.into_iter().enumerate() {
                _mm512_storeu_ps(
                    hidden.as_mut_ptr().add(image * HIDDEN + units + v * LANES),
                    acc,
                );
            }
        }
    }
}

/// fc1's backward product: for each node n and feature f with `wanted[n · 9216 + f]`,
/// `d_features[n · 9216 + f]` = Σ_unit `d_hidden[n · 128 + unit]` · `weights[f · 128 + unit]`;
/// the other entries are left as they are. Each wanted row of the weights is read once for all
/// the nodes.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn fc1_backward(
    d_hidden: &[f32],
    weights: &[f32],
    wanted: &[bool],
    d_features: &mut [f32],
) {
    let nodes = d_hidden.len() / HIDDEN;
    assert!(
        d_hidden.len() == nodes * HIDDEN
            && weights.len() == FEATURES * HIDDEN
            && wanted.len() == nodes * FEATURES
            && d_features.len() == nodes * FEATURES
    );
    const V: usize = HIDDEN / LANES;
    // SAFETY: f < 9216 and n < nodes, so the weight row f · 128 + 128 ≤ 9216 · 128, a d_hidden
    // row n · 128 + 128 ≤ nodes · 128, and n · 9216 + f < nodes · 9216 (lengths checked above).
    unsafe {
        for f in 0..FEATURES {
            if !(0..nodes).any(|n| *wanted.get_unchecked(n * FEATURES + f)) {
                continue;
            }
            let row = weights.as_ptr().add(f * HIDDEN);
            let w: [__m512; V] = std::array::from_fn(|v| _mm512_loadu_ps(row.add(v * LANES)));
            for n in 0..nodes {
                if !*wanted.get_unchecked(n * FEATURES + f) {
                    continue;
                }
                let d = d_hidden.as_ptr().add(n * HIDDEN);
                let mut acc = _mm512_mul_ps(w[0], _mm512_loadu_ps(d));
                for (v, &w) in w.iter().enumerate().skip(1) {
                    acc = _mm512_fmadd_ps(w, _mm512_loadu_ps(d.add(v * LANES)), acc);
                }
                *d_features.get_unchecked_mut(n * FEATURES + f) = _mm512_reduce_add_ps(acc);
            }
        }
    }
}

/// conv2's and conv1's ReLU's backward pass for one node, added into `sums` with its quadrature
/// `weight`: for each conv2 position p that `carries` a gradient, the 288 gradients of its input
/// patch, Σ_channel `d_conv2[p · 64 + channel]` · `weights_t[channel · 288 ..]`, each kept where
/// conv1's output was `positive` (ReLU's derivative), times `weight`, added into `sums` (26 × 26
/// × 32, channels-last) at the inputs of the patch. `weights_t` is `[out channel][tap · 32 + in
/// channel]`, 64 × 288.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn conv2_backward(
    d_conv2: &[f32],
    carries: &[bool],
    weights_t: &[f32],
    positive: &[u32],
    weight: f32,
    sums: &mut [f32],
) {
    const PATCH: usize = TAPS * C1;
    const V: usize = PATCH / LANES;
    assert!(
        d_conv2.len() == POSITIONS2 * C2
            && carries.len() == POSITIONS2
            && weights_t.len() == C2 * PATCH
            && positive.len() == POSITIONS1
            && sums.len() == POSITIONS1 * C1
    );
    // SAFETY: p < 576 and channel < 64 index d_conv2 (576 × 64); a weights_t row channel · 288 +
    // 288 ≤ 64 · 288; an input position (y + ky) · 26 + x + kx < 676 indexes `positive` and, times
    // 32 plus 32, `sums` (lengths checked above).
    unsafe {
        let weight = _mm512_set1_ps(weight);
        for p in 0..POSITIONS2 {
            if !*carries.get_unchecked(p) {
                continue;
            }
            let mut acc = [_mm512_setzero_ps(); V];
            for channel in 0..C2 {
                let g = *d_conv2.get_unchecked(p * C2 + channel);
                if g == 0.0 {
                    continue;
                }
                let g = _mm512_set1_ps(g);
                let row = weights_t.as_ptr().add(channel * PATCH);
                for (v, acc) in acc.iter_mut().enumerate() {
                    *acc = _mm512_fmadd_ps(g, _mm512_loadu_ps(row.add(v * LANES)), *acc);
                }
            }
            let (y, x) = (p / SIDE2, p % SIDE2);
            for tap in 0..TAPS {
                let q = (y + tap / KERNEL) * SIDE1 + x + tap % KERNEL;
                let bits = *positive.get_unchecked(q);
                let to = sums.as_mut_ptr().add(q * C1);
                for half in 0..2 {
                    let mask = (bits >> (half * LANES)) as u16;
                    let sum = _mm512_loadu_ps(to.add(half * LANES));
                    let sum = _mm512_mask3_fmadd_ps(weight, acc[tap * 2 + half], sum, mask);
                    _mm512_storeu_ps(to.add(half * LANES), sum);
                }
            }
        }
    }
}

/// Bias, ReLU and 2 × 2 max-pooling of conv2's output (24 × 24 × 64, channels-last) into
/// `features` (12 × 12 × 64), and in `from` for each feature the conv2 position (0..576) of its
/// window's maximum, the first of equal ones as in PyTorch, or `not_pooled` where ReLU cut the
/// feature to zero.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn relu_pool_traced(
    conv2: &[f32],
    bias: &[f32],
    features: &mut [f32],
    from: &mut [u16],
) {
    assert!(
        conv2.len() == POSITIONS2 * C2
            && bias.len() == C2
            && features.len() == FEATURES
            && from.len() == FEATURES
    );
    // SAFETY: a corner position < 576 indexes conv2 (576 × 64) and a pooled position < 144
    // indexes features and from (144 × 64), each 16 channels at a time (lengths checked above).
    unsafe {
        let zero = _mm512_setzero_ps();
        let none = _mm512_set1_epi32(i32::from(super::kernel::NOT_POOLED));
        for pooled in 0..POOLED * POOLED {
            let (py, px) = (pooled / POOLED, pooled % POOLED);
            let corners = [(0, 0), (0, 1), (1, 0), (1, 1)]
                .map(|(dy, dx)| (2 * py + dy) * SIDE2 + 2 * px + dx);
            for v in 0..C2 / LANES {
                let load = |at: usize| _mm512_loadu_ps(conv2.as_ptr().add(at * C2 + v * LANES));
                let mut best = load(corners[0]);
                let mut at = _mm512_set1_epi32(corners[0] as i32);
                for &corner in &corners[1..] {
                    let value = load(corner);
                    let greater = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(value, best);
                    best = _mm512_mask_blend_ps(greater, best, value);
                    at = _mm512_mask_blend_epi32(greater, at, _mm512_set1_epi32(corner as i32));
                }
                let value = _mm512_add_ps(best, _mm512_loadu_ps(bias.as_ptr().add(v * LANES)));
                let kept = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(value, zero);
                let to = pooled * C2 + v * LANES;
                _mm512_storeu_ps(
                    features.as_mut_ptr().add(to),
                    _mm512_maskz_mov_ps(kept, value),
                );
                let at = _mm512_mask_blend_epi32(kept, none, at);
                _mm256_storeu_si256(from.as_mut_ptr().add(to).cast(), _mm512_cvtepi32_epi16(at));
            }
        }
    }
}
