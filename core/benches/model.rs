//! `cargo bench -p max-mnist-core`: the model's costs on the upstream weights — forward pass at batch
//! 1 and 64, and a 50-step Integrated Gradients explanation.
//! Weights: `MAX_MNIST_WEIGHTS`, else `assets/mnist-classifier.pt` (run `max-mnist fetch-assets`).

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use max_mnist_core::{DigitModel, ImageLimits, MnistClassifier};

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

fn model_benches(c: &mut Criterion) {
    let model = classifier();
    let seven = model
        .pre_process(include_bytes!("../../samples/7.png"))
        .expect("the sample decodes");
    let mut group = c.benchmark_group("forward");
    for batch in [1usize, 64] {
        let inputs = vec![seven.clone(); batch];
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("batch {batch}"), |b| {
            b.iter(|| model.predict(&inputs).expect("predicts"))
        });
    }
    group.finish();
    c.bench_function("explain 50 steps", |b| {
        b.iter(|| model.explain(&seven, 7, 50).expect("explains"))
    });
    c.bench_function("pre_process 28x28 PNG", |b| {
        b.iter(|| {
            model
                .pre_process(include_bytes!("../../samples/7.png"))
                .expect("decodes")
        })
    });
}

criterion_group!(benches, model_benches);
criterion_main!(benches);
