//! ONNX networks through ONNX Runtime: each export gives ONNX Runtime's own outputs (its
//! `reference.json`, made by ONNX Runtime 1.32 from Python on fixed inputs), the three exports of
//! the served networks give the native kernels' predictions, and TorchServe's `image_classifier`
//! pre-processing of `kitten.jpg` gives the reference's tensor and top 5.

use max_mnist_core::model_settings::{ImageSettings, ModelSettings};
use max_mnist_core::records::parse_csv;
use max_mnist_core::{Answer, InputKind, Model, ModelInput, OutputKind, RawInput};
use serde_json::Value;

use crate::exactness::argmax;
use crate::helpers::{
    data_dir, json_numbers, mnist_test_set, onnx_dir, onnx_model, onnx_reference, titanic_dir,
    titanic_model, torchserve_model, upstream_model,
};
use crate::titanic::assert_close_to_largest;

/// A Python with Pillow (`scripts/requirements.txt`).
const CLIENT_PYTHON_VAR: &str = "MNIST_CLIENT_PYTHON";

/// The reference inputs: flattened element i of the batch is `((i * 7919) % 255) / 255`.
fn reference_input(shape: &[usize]) -> Vec<Vec<f64>> {
    let (batch, instance) = (shape[0], shape[1..].iter().product::<usize>());
    (0..batch)
        .map(|n| {
            (0..instance)
                .map(|j| {
                    let i = n * instance + j;
                    f64::from(((i * 7919) % 255) as f32 / 255.0)
                })
                .collect()
        })
        .collect()
}

/// The tensor's sum within `relative` of `sum`, its first values within `each` of `first`.
fn assert_tensor_close(input: &ModelInput, sum: f64, first: &[f64], relative: f64, each: f64) {
    let ours: f64 = input.0.iter().map(|&v| f64::from(v)).sum();
    assert!(
        (ours - sum).abs() <= relative * sum.abs(),
        "sum {ours}, ONNX Runtime's input {sum}"
    );
    for (ours, theirs) in input.0.iter().zip(first) {
        assert!(
            (f64::from(*ours) - theirs).abs() <= each,
            "{ours} vs {theirs}"
        );
    }
}

/// The picture as Pillow decodes it, written as PNG by the tests' Python (with Pillow).
fn pillow_decoded(path: &std::path::Path) -> Vec<u8> {
    let python = data_dir(CLIENT_PYTHON_VAR);
    let dir = tempfile::tempdir().expect("temp dir");
    let png = dir.path().join("decoded.png");
    let status = std::process::Command::new(&python)
        .args([
            "-c",
            "import sys; from PIL import Image; Image.open(sys.argv[1]).save(sys.argv[2])",
        ])
        .arg(path)
        .arg(&png)
        .status()
        .unwrap_or_else(|err| panic!("run {}: {err}", python.display()));
    assert!(
        status.success(),
        "Pillow could not convert {}",
        path.display()
    );
    std::fs::read(&png).expect("the PNG")
}

fn shape_of(value: &Value) -> Vec<usize> {
    value
        .as_array()
        .expect("a shape")
        .iter()
        .map(|d| d.as_u64().expect("a dimension") as usize)
        .collect()
}

/// The digit networks' exports take MNIST-normalised images, as the native networks do.
fn digit_settings(mean: f32, std: f32) -> ModelSettings {
    ModelSettings {
        image: ImageSettings {
            mean: Some(vec![mean]),
            std: Some(vec![std]),
            mnist: true,
            ..ImageSettings::default()
        },
        ..ModelSettings::default()
    }
}

#[test]
#[ignore = "needs MNIST_ONNX_DIR and ORT_DYLIB_PATH (.ci/run sets them and runs ignored tests)"]
fn every_export_gives_onnx_runtimes_outputs_on_the_reference_inputs() {
    let reference = onnx_reference();
    let models = reference["models"].as_object().expect("models");
    assert_eq!(models.len(), 5);
    for (name, expected) in models {
        let model = onnx_model(&format!("{name}.onnx"), ModelSettings::default());
        let info = model.info();
        assert_eq!(info.network.name, "ONNX", "{name}");
        assert_eq!(info.input.name, expected["input"]["name"], "{name}");
        let shape = shape_of(&expected["input"]["shape"]);
        assert_eq!(info.input.shape, shape[1..], "{name}");
        let inputs: Vec<ModelInput> = reference_input(&shape)
            .iter()
            .map(|values| {
                model
                    .pre_process(RawInput::Tensor(values))
                    .expect("a tensor")
            })
            .collect();
        let outputs = model.predict(&inputs).expect("runs");
        let expected_outputs = expected["outputs"].as_array().expect("outputs");
        assert_eq!(outputs.len(), expected_outputs.len(), "{name}");
        for (index, (output, expected)) in outputs.iter().zip(expected_outputs).enumerate() {
            assert_close_to_largest(
                &output.0,
                &json_numbers(expected),
                1e-4,
                &format!("{name} instance {index}"),
            );
        }
        // One at a time, the same.
        let single = model.predict(&inputs[..1]).expect("runs");
        assert_eq!(single[0], outputs[0], "{name}: batch of one");
    }
}

#[test]
#[ignore = "needs MNIST_ONNX_DIR, MNIST_DATA_DIR, MNIST_TORCHSERVE_DIR and ORT_DYLIB_PATH (.ci/run sets them)"]
fn the_digit_exports_give_the_native_kernels_prediction_on_all_ten_thousand_images() {
    use max_mnist_core::architectures::{my_convnet, net};
    let test_set = mnist_test_set();
    let cases: [(&str, std::sync::Arc<dyn Model>, _, _); 2] = [
        (
            "my_convnet.onnx",
            upstream_model() as std::sync::Arc<dyn Model>,
            my_convnet::NORMALISATION,
            OutputKind::Logits,
        ),
        (
            "net.onnx",
            torchserve_model(),
            net::NORMALISATION,
            OutputKind::LogProbabilities,
        ),
    ];
    for (file, native, normalisation, kind) in cases {
        let exported = onnx_model(file, digit_settings(normalisation.mean, normalisation.std));
        assert_eq!(
            exported.info().output.kind,
            kind,
            "{file}: read from the output's name"
        );
        assert_eq!(exported.info().output.answer, Answer::Class);
        let inputs: Vec<ModelInput> = test_set
            .images
            .iter()
            .map(|pixels| ModelInput(pixels.iter().map(|&p| normalisation.pixel(p)).collect()))
            .collect();
        let mut mismatches = Vec::new();
        let mut worst = 0f32;
        for (chunk, batch) in inputs.chunks(500).enumerate() {
            let ours = native.predict(batch).expect("native");
            let theirs = exported.predict(batch).expect("ONNX Runtime");
            for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
                if argmax(&a.0) != argmax(&b.0) {
                    mismatches.push(chunk * 500 + i);
                }
                worst =
                    a.0.iter()
                        .zip(&b.0)
                        .fold(worst, |w, (x, y)| w.max((x - y).abs()));
            }
        }
        assert!(
            mismatches.is_empty(),
            "{file}: predictions differ on {mismatches:?}"
        );
        assert!(worst < 1e-4, "{file}: outputs differ by {worst}");
        // A PNG digit goes through the same MNIST pipeline as the native network's.
        let png = std::fs::read(crate::helpers::sample_path(7)).expect("sample");
        assert_eq!(
            exported
                .pre_process(RawInput::File(&png))
                .expect("a picture"),
            native.pre_process(RawInput::File(&png)).expect("a picture"),
            "{file}"
        );
    }
}

#[test]
#[ignore = "needs MNIST_ONNX_DIR, MNIST_TITANIC_DIR and ORT_DYLIB_PATH (.ci/run sets them)"]
fn the_titanic_export_gives_the_native_probabilities_for_every_passenger() {
    let (native, exported) = (
        titanic_model(),
        onnx_model("titanic.onnx", ModelSettings::default()),
    );
    let info = exported.info();
    assert_eq!(info.input.kind, InputKind::Features);
    assert_eq!(info.output.kind, OutputKind::Probabilities);
    assert_eq!(info.output.answer, Answer::Label);
    assert_eq!(info.input.feature_names[0], "feature_0");
    let bytes = std::fs::read(titanic_dir().join("titanic3.csv")).expect("titanic3.csv");
    let records = parse_csv(&bytes, 2000).expect("parses");
    assert_eq!(records.len(), 1309);
    let encoded: Vec<ModelInput> = records
        .iter()
        .map(|r| {
            native
                .pre_process(RawInput::Record(r))
                .expect("a passenger")
        })
        .collect();
    let ours = native.predict(&encoded).expect("native");
    let theirs = exported.predict(&encoded).expect("ONNX Runtime");
    for (row, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(argmax(&a.0), argmax(&b.0), "row {}", row + 1);
        let expected: Vec<f64> = a.0.iter().map(|&v| f64::from(v)).collect();
        assert_close_to_largest(&b.0, &expected, 1e-5, &format!("row {}", row + 1));
    }
}

#[test]
#[ignore = "needs MNIST_ONNX_DIR, MNIST_CLIENT_PYTHON and ORT_DYLIB_PATH (.ci/run sets them)"]
fn the_kitten_through_image_classifier_gives_onnx_runtimes_tensor_logits_and_top_five() {
    let reference = &onnx_reference()["kitten_squeezenet1_1"];
    let model = onnx_model("squeezenet1_1.mar", ModelSettings::default());
    let info = model.info();
    assert_eq!(info.input.shape, [3, 224, 224]);
    assert_eq!(info.output.answer, Answer::TopLabels(5));
    assert_eq!(info.output.labels.len(), 1000);
    let kitten = std::fs::read(onnx_dir().join("kitten.jpg")).expect("kitten.jpg");
    let input = model
        .pre_process(RawInput::File(&kitten))
        .expect("a picture");
    // JPEG decoders (Pillow's libjpeg-turbo, the image crate's) differ by a grey level here and
    // there: the sum of 150,528 values within 0.5 %, each of the first within two grey levels.
    let expected_sum = reference["input_sum"].as_f64().expect("input_sum");
    let expected_first = json_numbers(&reference["input_first_values"]);
    assert_tensor_close(
        &input,
        expected_sum,
        &expected_first,
        5e-3,
        2.0 / 255.0 / 0.229,
    );
    // The same pixels as Pillow decodes them (a PNG it wrote): the resize, crop and normalisation
    // are Pillow's and torchvision's to the float.
    let png = pillow_decoded(&onnx_dir().join("kitten.jpg"));
    let exact = model.pre_process(RawInput::File(&png)).expect("a picture");
    assert_tensor_close(&exact, expected_sum, &expected_first, 1e-6, 1e-6);
    let output = model
        .predict(std::slice::from_ref(&input))
        .expect("runs")
        .remove(0);
    assert_close_to_largest(
        &output.0,
        &json_numbers(&reference["logits"]),
        0.02,
        "logits",
    );
    let top: Vec<&str> = model
        .post_process(&output)
        .top_k(5)
        .iter()
        .map(|p| info.output.label(p.class))
        .collect();
    let expected: Vec<&str> = reference["top5"]
        .as_array()
        .expect("top5")
        .iter()
        .map(|item| item["label"].as_str().expect("label"))
        .collect();
    assert_eq!(top, expected);
}

#[test]
#[ignore = "needs MNIST_ONNX_DIR and ORT_DYLIB_PATH (.ci/run sets them and runs ignored tests)"]
fn a_bare_image_graph_resizes_to_its_shape_and_scales_to_0_1() {
    let model = onnx_model("net.onnx", ModelSettings::default());
    let png = std::fs::read(crate::helpers::sample_path(7)).expect("sample");
    let pixels = image::load_from_memory(&png).expect("PNG").to_luma8();
    let input = model.pre_process(RawInput::File(&png)).expect("a picture");
    let expected: Vec<f32> = pixels
        .as_raw()
        .iter()
        .map(|&p| f32::from(p) / 255.0)
        .collect();
    assert_eq!(input.0, expected, "a 28×28 grey picture is only scaled");
    // A bigger colour picture is resized to 28×28 and made grey.
    let big = image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
        100,
        60,
        image::Rgb([255, 255, 255]),
    ));
    let mut encoded = Vec::new();
    big.write_to(
        &mut std::io::Cursor::new(&mut encoded),
        image::ImageFormat::Png,
    )
    .expect("encode");
    let input = model
        .pre_process(RawInput::File(&encoded))
        .expect("a picture");
    assert_eq!(input.0.len(), 784);
    assert!(input.0.iter().all(|&v| v == 1.0));
}

#[test]
#[ignore = "needs MNIST_ONNX_DIR and ORT_DYLIB_PATH (.ci/run sets them and runs ignored tests)"]
fn settings_come_from_the_archive_and_the_configuration_wins() {
    use max_mnist_core::model::OutputKind;
    let dir = tempfile::tempdir().expect("temp dir");
    let net = std::fs::read(onnx_dir().join("net.onnx")).expect("net.onnx");
    let settings =
        b"output = \"logits\"\ntop_k = 3\n[image]\nmnist = true\nmean = [0.1307]\nstd = [0.3081]\n";
    let manifest = br#"{"model": {"modelName": "digits", "modelVersion": "2.0", "serializedFile": "net.onnx", "handler": "mnist_handler.py"}}"#;
    let labels: String = format!(
        "{{{}}}",
        (0..10)
            .map(|d| format!("\"{d}\": \"digit {d}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mar = dir.path().join("digits.mar");
    let archive = crate::helpers::zip_of(&[
        ("MAR-INF/MANIFEST.json", manifest.as_slice()),
        ("net.onnx", &net),
        ("index_to_name.json", labels.as_bytes()),
        ("max-mnist.toml", settings.as_slice()),
    ]);
    std::fs::write(&mar, archive).expect("write the archive");
    let limits = crate::helpers::settings().load_limits();
    let archived =
        max_mnist_core::load(&max_mnist_core::ModelSource::file(&mar), &limits).expect("loads");
    let info = archived.info();
    assert_eq!(
        (info.name.as_str(), info.version.as_str()),
        ("digits", "2.0")
    );
    assert_eq!(
        info.output.kind,
        OutputKind::Logits,
        "the archive's setting over the output's name"
    );
    assert_eq!(info.output.answer, Answer::TopLabels(3));
    assert_eq!(info.output.label(7), "digit 7");
    let png = std::fs::read(crate::helpers::sample_path(7)).expect("sample");
    let seven = archived.pre_process(RawInput::File(&png)).expect("a digit");
    assert_eq!(
        archived
            .post_process(&archived.predict(&[seven]).expect("runs")[0])
            .class,
        7
    );
    // The configuration's settings win, key by key.
    let configured = max_mnist_core::ModelSource {
        settings: ModelSettings {
            top_k: Some(1),
            ..ModelSettings::default()
        },
        ..max_mnist_core::ModelSource::file(&mar)
    };
    let info = max_mnist_core::load(&configured, &limits)
        .expect("loads")
        .info()
        .clone();
    assert_eq!(info.output.answer, Answer::TopLabels(1));
    assert_eq!(info.output.kind, OutputKind::Logits);
    // A bad setting stops the load, naming it.
    let wrong = max_mnist_core::ModelSource {
        settings: ModelSettings {
            image: ImageSettings {
                mean: Some(vec![0.5, 0.5]),
                ..ImageSettings::default()
            },
            ..ModelSettings::default()
        },
        ..max_mnist_core::ModelSource::file(onnx_dir().join("net.onnx"))
    };
    let message = max_mnist_core::load(&wrong, &limits)
        .err()
        .expect("refused")
        .to_string();
    assert!(message.contains("image.mean has 2 values"), "{message}");
}
