//! MyConvNet's forward pass as one fused CPU kernel: a direct convolution that accumulates each
//! output row in registers across the 25 taps, ReLU and max-pooling of each finished plane, the fully
//! connected layers vectorised across their outputs. About 51,000 multiply-adds per image, with no
//! allocation; candle's generic ops spend hundreds of microseconds on the same network.
//!
//! The same code is compiled twice: for the x86-64 baseline (SSE2) and with AVX enabled, chosen at
//! run time, so the binary runs on any x86-64 CPU. Both do the same operations in the same order
//! (no fused multiply-add), so their logits are identical bit for bit.
//!
//! It is also a candle [`CustomOp1`], so that it can stand in for [`MyConvNet`](super::layers::MyConvNet)'s
//! layers inside a candle graph.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape};

use super::{
    C1, C2, CLASSES as NUM_CLASSES, FLAT, HIDDEN, KERNEL, PIXELS as IMAGE_PIXELS, POOLED1, POOLED2,
    SIDE as IMAGE_SIDE, SIDE1, SIDE2,
};
use crate::WeightsError;

/// The network's ten raw outputs, one per digit.
pub type Logits = [f32; NUM_CLASSES];

const TAPS: usize = KERNEL * KERNEL;

/// MyConvNet's parameters, laid out for the kernel.
#[derive(Debug, Clone)]
pub struct FusedConvNet {
    /// `[out channel][tap]`, PyTorch's layout.
    conv1_w: [[f32; TAPS]; C1],
    conv1_b: [f32; C1],
    /// `[out channel][in channel][tap]`, PyTorch's layout.
    conv2_w: [[[f32; TAPS]; C1]; C2],
    conv2_b: [f32; C2],
    /// Transposed, `[input][hidden unit]`, so the loop over hidden units vectorises.
    fc1_w: [[f32; HIDDEN]; FLAT],
    fc1_b: [f32; HIDDEN],
    fc2_w: [[f32; HIDDEN]; NUM_CLASSES],
    fc2_b: [f32; NUM_CLASSES],
}

impl FusedConvNet {
    /// From MyConvNet's parameters in PyTorch's layout, in the order of
    /// [`MyConvNet::parameters`](super::layers::MyConvNet::parameters).
    pub fn new(parameters: &[Vec<f32>; 8]) -> Result<Self, WeightsError> {
        let [conv1_w, conv1_b, conv2_w, conv2_b, fc1_w, fc1_b, fc2_w, fc2_b] = parameters;
        let expect = |name: &str, values: &[f32], expected: usize| {
            if values.len() == expected {
                Ok(())
            } else {
                Err(WeightsError::WrongShape {
                    architecture: "MyConvNet",
                    name: name.to_owned(),
                    expected: vec![expected],
                    found: vec![values.len()],
                })
            }
        };
        expect("conv1.weight", conv1_w, C1 * TAPS)?;
        expect("conv1.bias", conv1_b, C1)?;
        expect("conv2.weight", conv2_w, C2 * C1 * TAPS)?;
        expect("conv2.bias", conv2_b, C2)?;
        expect("fc1.weight", fc1_w, HIDDEN * FLAT)?;
        expect("fc1.bias", fc1_b, HIDDEN)?;
        expect("fc2.weight", fc2_w, NUM_CLASSES * HIDDEN)?;
        expect("fc2.bias", fc2_b, NUM_CLASSES)?;
        // Every length was checked above, so the indexing below stays in bounds.
        Ok(Self {
            conv1_w: std::array::from_fn(|co| std::array::from_fn(|tap| conv1_w[co * TAPS + tap])),
            conv1_b: std::array::from_fn(|co| conv1_b[co]),
            conv2_w: std::array::from_fn(|co| {
                std::array::from_fn(|ci| {
                    std::array::from_fn(|tap| conv2_w[(co * C1 + ci) * TAPS + tap])
                })
            }),
            conv2_b: std::array::from_fn(|co| conv2_b[co]),
            fc1_w: std::array::from_fn(|i| std::array::from_fn(|j| fc1_w[j * FLAT + i])),
            fc1_b: std::array::from_fn(|j| fc1_b[j]),
            fc2_w: std::array::from_fn(|k| std::array::from_fn(|j| fc2_w[k * HIDDEN + j])),
            fc2_b: std::array::from_fn(|k| fc2_b[k]),
        })
    }

    /// The ten logits of one normalised image (row-major 28×28).
    pub fn logits(&self, image: &[f32; IMAGE_PIXELS]) -> Logits {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU has just been found to support AVX, the only feature the function enables.
            return unsafe { self.logits_avx(image) };
        }
        self.logits_portable(image)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx")]
    fn logits_avx(&self, image: &[f32; IMAGE_PIXELS]) -> Logits {
        self.forward(image)
    }

    /// The baseline build of the kernel, also the reference the AVX build is tested against.
    pub fn logits_portable(&self, image: &[f32; IMAGE_PIXELS]) -> Logits {
        self.forward(image)
    }

    #[inline(always)]
    fn forward(&self, image: &[f32; IMAGE_PIXELS]) -> Logits {
        let pooled1 = self.conv1_relu_pool(image);
        let pooled2 = self.conv2_relu_pool(&pooled1);
        self.fully_connected(&pooled2)
    }

    /// conv1 → ReLU → max-pool 2: `[channel][row][column]` of 12×12.
    #[inline(always)]
    fn conv1_relu_pool(&self, image: &[f32; IMAGE_PIXELS]) -> [[[f32; POOLED1]; POOLED1]; C1] {
        let mut pooled = [[[0f32; POOLED1]; POOLED1]; C1];
        let mut plane = [[0f32; SIDE1]; SIDE1];
        for (out, (weights, &bias)) in pooled
            .iter_mut()
            .zip(self.conv1_w.iter().zip(&self.conv1_b))
        {
            // Each output row is accumulated in registers, then stored whole: pooling from
            // memory keeps the compiler from de-interleaving the accumulators, which costs a
            // shuffle per multiply-add.
            for (y, plane_row) in plane.iter_mut().enumerate() {
                let mut row = [bias; SIDE1];
                for ky in 0..KERNEL {
                    let line = (y + ky) * IMAGE_SIDE;
                    for kx in 0..KERNEL {
                        let w = weights[ky * KERNEL + kx];
                        axpy(&mut row, window(image, line + kx), w);
                    }
                }
                *plane_row = row;
            }
            *out = relu_max_pool(&plane);
        }
        pooled
    }

    /// conv2 → ReLU → max-pool 2, flattened as PyTorch's `flatten(1)`: 96 values.
    #[inline(always)]
    fn conv2_relu_pool(&self, pooled1: &[[[f32; POOLED1]; POOLED1]; C1]) -> [f32; FLAT] {
        let mut pooled = [[[0f32; POOLED2]; POOLED2]; C2];
        let mut plane = [[0f32; SIDE2]; SIDE2];
        for (out, (channel_weights, &bias)) in pooled
            .iter_mut()
            .zip(self.conv2_w.iter().zip(&self.conv2_b))
        {
            for (y, plane_row) in plane.iter_mut().enumerate() {
                let mut row = [bias; SIDE2];
                for (input, weights) in pooled1.iter().zip(channel_weights) {
                    for ky in 0..KERNEL {
                        for kx in 0..KERNEL {
                            let w = weights[ky * KERNEL + kx];
                            axpy(&mut row, window(&input[y + ky], kx), w);
                        }
                    }
                }
                *plane_row = row;
            }
            *out = relu_max_pool(&plane);
        }
        let mut flat = [0f32; FLAT];
        flat.copy_from_slice(pooled.as_flattened().as_flattened());
        flat
    }

    /// fc1 → ReLU → fc2.
    #[inline(always)]
    fn fully_connected(&self, flat: &[f32; FLAT]) -> Logits {
        let mut hidden = self.fc1_b;
        for (&x, weights) in flat.iter().zip(&self.fc1_w) {
            for (h, &w) in hidden.iter_mut().zip(weights) {
                *h += x * w;
            }
        }
        let mut logits = self.fc2_b;
        for (logit, weights) in logits.iter_mut().zip(&self.fc2_w) {
            for (&h, &w) in hidden.iter().zip(weights) {
                *logit += h.max(0.0) * w;
            }
        }
        logits
    }
}

/// `N` values of `line` from `start`.
#[inline(always)]
fn window<const N: usize>(line: &[f32], start: usize) -> &[f32; N] {
    match line.get(start..start + N).and_then(|w| w.try_into().ok()) {
        Some(window) => window,
        None => unreachable_window(),
    }
}

/// The kernel's windows are fixed by the network's constant sizes, so this is never reached.
#[cold]
fn unreachable_window<const N: usize>() -> &'static [f32; N] {
    unreachable!("a convolution window outside its input")
}

/// `acc += w · x`, lane by lane.
#[inline(always)]
fn axpy<const N: usize>(acc: &mut [f32; N], x: &[f32; N], w: f32) {
    for (a, &v) in acc.iter_mut().zip(x) {
        *a += v * w;
    }
}

/// ReLU and 2×2 max-pooling. (ReLU and max commute.)
#[inline(always)]
fn relu_max_pool<const IN: usize, const OUT: usize>(plane: &[[f32; IN]; IN]) -> [[f32; OUT]; OUT] {
    let mut pooled = [[0f32; OUT]; OUT];
    for (pair, out_row) in plane.chunks_exact(2).zip(pooled.iter_mut()) {
        let [upper, lower] = pair else { continue };
        for ((out, up), low) in out_row
            .iter_mut()
            .zip(upper.chunks_exact(2))
            .zip(lower.chunks_exact(2))
        {
            *out = up.iter().chain(low).fold(0.0, |max, &v| max.max(v));
        }
    }
    pooled
}

impl CustomOp1 for FusedConvNet {
    fn name(&self) -> &'static str {
        "my-conv-net-fused"
    }

    /// `[N, 784]` or `[N, 1, 28, 28]` normalised images (f32) → `[N, 10]` logits.
    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(values) = storage else {
            candle_core::bail!(
                "the fused MyConvNet takes f32 images, got {:?}",
                storage.dtype()
            );
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("the fused MyConvNet takes a contiguous tensor");
        };
        let batch = layout.dims().first().copied().unwrap_or(0);
        if layout.shape().elem_count() != batch * IMAGE_PIXELS {
            candle_core::bail!(
                "the fused MyConvNet takes [N, 784] or [N, 1, 28, 28], got {:?}",
                layout.dims()
            );
        }
        let images = values.get(start..end).unwrap_or_default();
        let mut logits = Vec::with_capacity(batch * NUM_CLASSES);
        for image in images.chunks_exact(IMAGE_PIXELS) {
            if let Ok(image) = <&[f32; IMAGE_PIXELS]>::try_from(image) {
                logits.extend(self.logits(image));
            }
        }
        Ok((CpuStorage::F32(logits), Shape::from((batch, NUM_CLASSES))))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Module, Tensor};

    use super::*;
    use crate::architectures::my_convnet::{layers::MyConvNet, TENSORS};
    use crate::architectures::test_support::{noise, random_state_dict};

    fn random_net(seed: u64) -> MyConvNet {
        MyConvNet::from_state_dict(&random_state_dict(&TENSORS, seed)).expect("net")
    }

    fn random_image(seed: u64) -> Box<[f32; IMAGE_PIXELS]> {
        let mut next = noise(seed);
        Box::new(std::array::from_fn(|_| next()))
    }

    #[test]
    fn the_dispatched_build_equals_the_portable_build_bit_for_bit() {
        let net = random_net(7);
        for seed in 1..50 {
            let image = random_image(seed);
            assert_eq!(
                net.fused().logits(&image),
                net.fused().logits_portable(&image)
            );
        }
    }

    #[test]
    fn the_kernel_and_the_custom_op_agree_with_candles_layers() {
        for seed in 1..8 {
            let net = random_net(seed * 1000);
            let images: Vec<f32> = (0..16)
                .flat_map(|i| random_image(seed * 100 + i).to_vec())
                .collect();
            let batch =
                Tensor::from_vec(images.clone(), (16, IMAGE_PIXELS), &Device::Cpu).expect("batch");
            let reference = net
                .forward(&batch)
                .expect("candle")
                .to_vec2::<f32>()
                .expect("rows");
            let op = net
                .forward_fused(&batch.reshape((16, 1, IMAGE_SIDE, IMAGE_SIDE)).expect("4-d"))
                .expect("custom op")
                .to_vec2::<f32>()
                .expect("rows");
            for (i, image) in images.chunks_exact(IMAGE_PIXELS).enumerate() {
                let image: &[f32; IMAGE_PIXELS] = image.try_into().expect("784");
                let direct = net.fused().logits(image);
                assert_eq!(direct.as_slice(), op[i].as_slice());
                for (a, b) in direct.iter().zip(&reference[i]) {
                    assert!((a - b).abs() <= 1e-5, "{a} vs candle {b}");
                }
            }
        }
    }

    #[test]
    fn the_custom_op_refuses_what_it_cannot_compute() {
        let net = random_net(3);
        let wrong_size = Tensor::zeros((2, 783), candle_core::DType::F32, &Device::Cpu).expect("t");
        assert!(net.forward_fused(&wrong_size).is_err());
        let wrong_dtype =
            Tensor::zeros((1, 784), candle_core::DType::F64, &Device::Cpu).expect("t");
        assert!(net.forward_fused(&wrong_dtype).is_err());
        let strided = Tensor::zeros((784, 2), candle_core::DType::F32, &Device::Cpu)
            .and_then(|t| t.t())
            .expect("transposed");
        assert!(net.forward_fused(&strided).is_err());
    }
}
