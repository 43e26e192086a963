//! `cargo bench -p max-mnist-core`: the model's costs on the upstream weights — the header peek
//! that decides where a request runs, decoding, the MNIST-style normalisation, the forward pass
//! (fused kernel, the kernel as a candle custom op, and candle's layers) at batch 1 and 64, and a
//! 50-step Integrated Gradients explanation.
//! Weights: `MAX_MNIST_WEIGHTS`, else `assets/mnist-classifier.pt` (run `max-mnist fetch-assets`).

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use image::{imageops, DynamicImage, Rgb, RgbImage};
use max_mnist_core::image_input::{declared_pixels, decode, to_mnist_pixels};
use max_mnist_core::{DigitModel, ImageLimits, MnistClassifier};

const SEVEN: &[u8] = include_bytes!("../../samples/7.png");

fn classifier() -> MnistClassifier {
    let path = std::env::var_os("MAX_MNIST_WEIGHTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets/mnist-classifier.pt")
        });
    MnistClassifier::load(&path, ImageLimits::default()).unwrap_or_else(|err| {
        panic!("{err}: run `max-mnist fetch-assets` or set MAX_MNIST_WEIGHTS")
    })
}

/// The sample 7 as a phone might see it: 280×280 RGB, dark ink on light paper.
fn photo_of_seven() -> DynamicImage {
    let limits = ImageLimits::default();
    let gray = decode(SEVEN, &limits)
        .expect("the sample decodes")
        .into_luma8();
    let big = imageops::resize(&gray, 280, 280, imageops::FilterType::Triangle);
    DynamicImage::ImageRgb8(RgbImage::from_fn(280, 280, |x, y| {
        let ink = big.get_pixel(x, y).0[0];
        Rgb([235 - ink / 2, 230 - ink / 2, 220 - ink / 2])
    }))
}

fn input_benches(c: &mut Criterion) {
    let model = classifier();
    let limits = ImageLimits::default();
    c.bench_function("declared_pixels 28x28 PNG", |b| {
        b.iter(|| declared_pixels(SEVEN).expect("a header"))
    });
    c.bench_function("decode 28x28 PNG", |b| {
        b.iter(|| decode(SEVEN, &limits).expect("decodes"))
    });
    c.bench_function("pre_process 28x28 PNG", |b| {
        b.iter(|| model.pre_process(SEVEN).expect("decodes"))
    });
    let photo = photo_of_seven();
    c.bench_function("normalise 280x280 RGB photo", |b| {
        b.iter_batched(|| photo.clone(), to_mnist_pixels, BatchSize::SmallInput)
    });
}

fn model_benches(c: &mut Criterion) {
    let model = classifier();
    let seven = model.pre_process(SEVEN).expect("the sample decodes");
    let mut group = c.benchmark_group("forward");
    for batch in [1usize, 64] {
        let inputs = vec![seven.clone(); batch];
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("fused, batch {batch}"), |b| {
            b.iter(|| model.predict(&inputs).expect("predicts"))
        });
        group.bench_function(format!("fused custom op, batch {batch}"), |b| {
            b.iter(|| model.predict_fused_op(&inputs).expect("predicts"))
        });
        group.bench_function(format!("candle layers, batch {batch}"), |b| {
            b.iter(|| model.predict_reference(&inputs).expect("predicts"))
        });
    }
    group.finish();
    c.bench_function("explain 50 steps", |b| {
        b.iter(|| model.explain(&seven, 7, 50).expect("explains"))
    });
}

criterion_group!(benches, input_benches, model_benches);
criterion_main!(benches);
