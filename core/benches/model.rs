//! `cargo bench -p max-mnist-core`: the models' costs — the header peek that decides where a
//! request runs, decoding, the MNIST-style normalisation, the forward passes at batch 1 and 64
//! (MyConvNet: fused kernel, the kernel as a candle custom op, candle's layers; Net: its kernel on
//! the sample 7 and on dense noise, and candle's layers), Integrated Gradients explanations, and the Titanic model on a 100-row CSV.
//! Weights: `MAX_MNIST_WEIGHTS`, else `assets/mnist-classifier.pt` (run `max-mnist fetch-assets`);
//! TorchServe's Net from `MNIST_TORCHSERVE_DIR/mnist.mar` and the Titanic model from
//! `MNIST_TITANIC_DIR/titanic.mar` when those variables are set; the ONNX graphs `net.onnx`,
//! `squeezenet1_1.onnx` and `mobilenet_v3_small.onnx` through ONNX Runtime at batch 1 and 8 from
//! `MNIST_ONNX_DIR` (with the runtime library found as the server finds it, e.g. `ORT_DYLIB_PATH`),
//! for comparison with `scripts/bench-onnxruntime.py`: `onnx/…` in wall time, `onnx cpu/…` in the
//! calling thread's CPU time, which other processes on a shared machine disturb less.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use candle_core::{Device, Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Linear};
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use image::{imageops, DynamicImage, Rgb, RgbImage};
use max_mnist_core::architectures::my_convnet::MyConvNetModel;
use max_mnist_core::image_input::{declared_pixels, decode, to_mnist_pixels};
use max_mnist_core::{ImageLimits, LoadLimits, Model, ModelIdentity, ModelInput, RawInput};

const SEVEN: &[u8] = include_bytes!("../../samples/7.png");

fn limits() -> LoadLimits {
    LoadLimits {
        max_model_bytes: 256 << 20,
        image: ImageLimits::default(),
    }
}

fn my_convnet() -> MyConvNetModel {
    let path = std::env::var_os("MAX_MNIST_WEIGHTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets/mnist-classifier.pt")
        });
    let bytes = std::fs::read(&path).unwrap_or_else(|err| {
        panic!(
            "{}: {err}: run `max-mnist fetch-assets` or set MAX_MNIST_WEIGHTS",
            path.display()
        )
    });
    let tensors = max_mnist_core::weights::read_tensors(&bytes).expect("a checkpoint");
    let (architecture, state_dict) = max_mnist_core::recognise(tensors).expect("MyConvNet");
    assert_eq!(architecture.network().name, "MyConvNet");
    let identity = ModelIdentity {
        name: "mnist".into(),
        version: "1".into(),
        labels: None,
    };
    MyConvNetModel::new(&state_dict, identity, ImageLimits::default()).expect("builds")
}

fn torchserve_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("MNIST_TORCHSERVE_DIR").map(PathBuf::from);
    if dir.is_none() {
        eprintln!("note: MNIST_TORCHSERVE_DIR is not set, so Net is not measured");
    }
    dir
}

fn torchserve_net(dir: &std::path::Path) -> Arc<dyn Model> {
    let source = max_mnist_core::ModelSource::file(dir.join("mnist.mar"));
    max_mnist_core::load(&source, &limits()).expect("mnist.mar loads")
}

/// Net on candle's generic layers, as the example's `forward` (without the final log_softmax).
struct CandleNet {
    conv1: Conv2d,
    conv2: Conv2d,
    fc1: Linear,
    fc2: Linear,
}

impl CandleNet {
    fn load(dir: &std::path::Path) -> Self {
        let bytes = std::fs::read(dir.join("mnist_cnn.pt")).expect("mnist_cnn.pt");
        let tensors = max_mnist_core::weights::read_tensors(&bytes).expect("a checkpoint");
        let (_, state_dict) = max_mnist_core::recognise(tensors).expect("Net");
        let tensor = |name: &str| state_dict[name].clone();
        let conv = |layer: &str| {
            let weight = tensor(&format!("{layer}.weight"));
            Conv2d::new(
                weight,
                Some(tensor(&format!("{layer}.bias"))),
                Conv2dConfig::default(),
            )
        };
        let linear = |layer: &str| {
            Linear::new(
                tensor(&format!("{layer}.weight")),
                Some(tensor(&format!("{layer}.bias"))),
            )
        };
        Self {
            conv1: conv("conv1"),
            conv2: conv("conv2"),
            fc1: linear("fc1"),
            fc2: linear("fc2"),
        }
    }

    fn forward(&self, images: &Tensor) -> candle_core::Result<Tensor> {
        let xs = self.conv1.forward(images)?.relu()?;
        let xs = self.conv2.forward(&xs)?.relu()?.max_pool2d(2)?;
        let xs = self.fc1.forward(&xs.flatten_from(1)?)?.relu()?;
        self.fc2.forward(&xs)
    }
}

/// The sample 7 as a phone might see it: 280×280 RGB, dark ink on light paper.
fn photo_of_seven() -> DynamicImage {
    let gray = decode(SEVEN, &ImageLimits::default())
        .expect("the sample decodes")
        .into_luma8();
    let big = imageops::resize(&gray, 280, 280, imageops::FilterType::Triangle);
    DynamicImage::ImageRgb8(RgbImage::from_fn(280, 280, |x, y| {
        let ink = big.get_pixel(x, y).0[0];
        Rgb([235 - ink / 2, 230 - ink / 2, 220 - ink / 2])
    }))
}

fn input_benches(c: &mut Criterion) {
    let model = my_convnet();
    let limits = ImageLimits::default();
    c.bench_function("declared_pixels 28x28 PNG", |b| {
        b.iter(|| declared_pixels(SEVEN).expect("a header"))
    });
    c.bench_function("decode 28x28 PNG", |b| {
        b.iter(|| decode(SEVEN, &limits).expect("decodes"))
    });
    c.bench_function("pre_process 28x28 PNG", |b| {
        b.iter(|| model.pre_process(RawInput::File(SEVEN)).expect("decodes"))
    });
    let photo = photo_of_seven();
    c.bench_function("normalise 280x280 RGB photo", |b| {
        b.iter_batched(|| photo.clone(), to_mnist_pixels, BatchSize::SmallInput)
    });
}

fn my_convnet_benches(c: &mut Criterion) {
    let model = my_convnet();
    let seven = model
        .pre_process(RawInput::File(SEVEN))
        .expect("the sample decodes");
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

fn net_benches(c: &mut Criterion) {
    let Some(dir) = torchserve_dir() else {
        return;
    };
    let model = torchserve_net(&dir);
    let candle = CandleNet::load(&dir);
    let seven = model
        .pre_process(RawInput::File(SEVEN))
        .expect("the sample decodes");
    let mut group = c.benchmark_group("net forward");
    group.sample_size(30);
    for batch in [1usize, 4, 16, 64] {
        let inputs = vec![seven.clone(); batch];
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("batch {batch}"), |b| {
            b.iter(|| model.predict(&inputs).expect("predicts"))
        });
        if batch == 1 || batch == 64 {
            // Where every pixel differs from the background, ReLU leaves few inputs at zero for
            // the kernel to skip: the dense case, the cost of every multiply-add.
            let noise: Vec<ModelInput> = (0..batch)
                .map(|image| {
                    ModelInput(
                        (0..28 * 28)
                            .map(|i| {
                                let hash = ((image * 784 + i) as u32).wrapping_mul(2_654_435_761);
                                (hash >> 24) as f32 / 80.0 - 0.42
                            })
                            .collect(),
                    )
                })
                .collect();
            group.bench_function(format!("noise, batch {batch}"), |b| {
                b.iter(|| model.predict(&noise).expect("predicts"))
            });
            let values: Vec<f32> = inputs.iter().flat_map(|i| i.0.clone()).collect();
            let images =
                Tensor::from_vec(values, (batch, 1, 28, 28), &Device::Cpu).expect("a batch");
            group.bench_function(format!("candle layers, batch {batch}"), |b| {
                b.iter(|| candle.forward(&images).expect("forward"))
            });
        }
    }
    group.finish();
    let mut group = c.benchmark_group("net explain");
    group.sample_size(10);
    for steps in [15, 50] {
        group.bench_function(format!("{steps} steps"), |b| {
            b.iter(|| model.explain(&seven, 7, steps).expect("explains"))
        });
    }
    group.finish();
}

fn titanic_benches(c: &mut Criterion) {
    let Some(dir) = std::env::var_os("MNIST_TITANIC_DIR").map(PathBuf::from) else {
        eprintln!("note: MNIST_TITANIC_DIR is not set, so the Titanic model is not measured");
        return;
    };
    let source = max_mnist_core::ModelSource::file(dir.join("titanic.mar"));
    let model = max_mnist_core::load(&source, &limits()).expect("titanic.mar loads");
    // 100 passengers: the survived test file's 71 rows, then 29 of the other's.
    let read = |file: &str| {
        std::fs::read_to_string(dir.join("test_data").join(file)).expect("a test file")
    };
    let (survived, not_survived) = (
        read("titanic_survived.csv"),
        read("titanic_not_survived.csv"),
    );
    let csv: String = survived
        .lines()
        .chain(not_survived.lines().skip(1).take(29))
        .map(|line| format!("{line}\n"))
        .collect();
    let rows = max_mnist_core::records::parse_csv(csv.as_bytes(), 1000).expect("parses");
    assert_eq!(rows.len(), 100);
    let mut group = c.benchmark_group("titanic");
    group.bench_function("predict 100-row CSV", |b| {
        b.iter(|| {
            let rows = max_mnist_core::records::parse_csv(csv.as_bytes(), 1000).expect("parses");
            let raws: Vec<RawInput<'_>> = rows.iter().map(RawInput::Record).collect();
            max_mnist_core::classify(model.as_ref(), &raws).expect("classifies")
        })
    });
    group.bench_function("explain 100-row CSV, 50 steps", |b| {
        b.iter(|| {
            let rows = max_mnist_core::records::parse_csv(csv.as_bytes(), 1000).expect("parses");
            let raws: Vec<(RawInput<'_>, Option<usize>)> =
                rows.iter().map(|r| (RawInput::Record(r), None)).collect();
            let settings = max_mnist_core::ExplanationInfo {
                steps: 50,
                ..model.info().explanation
            };
            max_mnist_core::explain_all(model.as_ref(), &raws, settings).expect("explains")
        })
    });
    let one = model
        .pre_process(RawInput::Record(&rows[0]))
        .expect("a passenger");
    group.bench_function("explain one row, 50 steps", |b| {
        b.iter(|| model.explain(&one, 1, 50).expect("explains"))
    });
    group.finish();
}

/// Values spread as normalised pixels are (about [-2.1, 2.7]), the same on every run.
fn noise_input(len: usize, seed: usize) -> ModelInput {
    ModelInput(
        (0..len)
            .map(|i| {
                let hash = ((seed * len + i) as u32).wrapping_mul(2_654_435_761);
                (hash >> 24) as f32 / 54.0 - 2.1
            })
            .collect(),
    )
}

/// The calling thread's time on a CPU (the scheduler's count, in nanoseconds, as
/// `time.thread_time_ns()` reads it in Python): ONNX Runtime on one intra-op thread computes on
/// the caller's thread, so this is the run's cost without the time other processes held the core.
struct ThreadCpu(WallTime);

impl ThreadCpu {
    fn now() -> u64 {
        std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()
            .and_then(|text| text.split_whitespace().next()?.parse().ok())
            .expect("/proc/thread-self/schedstat (Linux) gives the thread's CPU time")
    }
}

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        Self::now()
    }
    fn end(&self, start: u64) -> u64 {
        Self::now().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        self.0.formatter()
    }
}

fn onnx_benches(c: &mut Criterion) {
    onnx_group(c, "onnx");
}

fn onnx_cpu_benches(c: &mut Criterion<ThreadCpu>) {
    onnx_group(c, "onnx cpu");
}

fn onnx_group<M: Measurement>(c: &mut Criterion<M>, name: &str) {
    let Some(dir) = std::env::var_os("MNIST_ONNX_DIR").map(PathBuf::from) else {
        eprintln!("note: MNIST_ONNX_DIR is not set, so the ONNX graphs are not measured ({name})");
        return;
    };
    let mut group = c.benchmark_group(name);
    // Six benchmarks of up to ~90 ms a call on a busy machine: short runs keep the group under
    // a minute.
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for file in ["net", "squeezenet1_1", "mobilenet_v3_small"] {
        let source = max_mnist_core::ModelSource::file(dir.join(format!("{file}.onnx")));
        let model = max_mnist_core::load(&source, &limits())
            .unwrap_or_else(|err| panic!("{file}.onnx: {err}"));
        let len = model.info().input.len();
        for batch in [1usize, 8] {
            let inputs: Vec<ModelInput> = (0..batch).map(|i| noise_input(len, i)).collect();
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_function(format!("{file}/batch {batch}"), |b| {
                b.iter(|| model.predict(&inputs).expect("predicts"))
            });
        }
    }
    group.finish();
}

criterion_group!(
    benches,
    input_benches,
    my_convnet_benches,
    net_benches,
    titanic_benches,
    onnx_benches
);
criterion_group! {
    name = onnx_cpu;
    config = Criterion::default().with_measurement(ThreadCpu(WallTime));
    targets = onnx_cpu_benches
}
criterion_main!(benches, onnx_cpu);
