//! Hostile ONNX files are refused at load, cleanly and naming the problem: cut short, a 10 GB
//! initializer declared in a small file, an unknown operator, a cyclic graph, a `Loop`, external
//! data naming a path on the server (never opened: here a FIFO, which would block whoever opened
//! it), TorchScript; through `serve` and through the management API, which keeps serving. Then
//! thousands of random mutations of a real export go through the whole loading path without a
//! panic.

use std::path::Path;
use std::time::{Duration, Instant};

use max_mnist_api::LoadedModel;
use max_mnist_core::onnx::graph::{
    GraphProto, ModelProto, NodeProto, StringStringEntryProto, TensorProto,
};
use max_mnist_core::ModelSource;
use prost::Message;
use reqwest::Method;

use crate::helpers::{
    onnx_dir, service_settings, settings, spawn_managed_app, torchserve_error, upstream_model,
    zip_of,
};

/// `titanic.onnx` (2 KB) with `extra` merged into its graph: protobuf merges a repeated message
/// field appended to the end, so the extra nodes and initializers join the real graph.
fn titanic_with(extra: GraphProto) -> Vec<u8> {
    let mut bytes = std::fs::read(onnx_dir().join("titanic.onnx")).expect("titanic.onnx");
    bytes.extend(
        ModelProto {
            graph: Some(extra),
            ..ModelProto::default()
        }
        .encode_to_vec(),
    );
    bytes
}

fn node(op_type: &str, input: &str, output: &str) -> NodeProto {
    NodeProto {
        op_type: op_type.into(),
        input: vec![input.into()],
        output: vec![output.into()],
        ..NodeProto::default()
    }
}

/// Loads `bytes` written as `file_name`, giving the error's message (a load that succeeds fails the
/// test).
fn refusal(dir: &Path, file_name: &str, bytes: &[u8]) -> String {
    let path = dir.join(file_name);
    std::fs::write(&path, bytes).expect("write");
    match max_mnist_core::load(&ModelSource::file(&path), &settings().load_limits()) {
        Ok(_) => panic!("{file_name} was loaded"),
        Err(err) => err.to_string(),
    }
}

fn hostile_files(fifo: &Path) -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let net = std::fs::read(onnx_dir().join("net.onnx")).expect("net.onnx");
    let huge = TensorProto {
        name: "huge".into(),
        dims: vec![50_000, 50_000],
        data_type: 1,
        ..TensorProto::default()
    };
    let external = TensorProto {
        name: "outside".into(),
        dims: vec![4],
        data_type: 1,
        data_location: 1,
        external_data: vec![StringStringEntryProto {
            key: "location".into(),
            value: fifo.display().to_string(),
        }],
        ..TensorProto::default()
    };
    let cut = net[..net.len() / 2].to_vec();
    vec![
        ("cut short", cut, "not a readable ONNX model"),
        (
            "a 10 GB initializer declared",
            titanic_with(GraphProto {
                initializer: vec![huge],
                ..GraphProto::default()
            }),
            "declares dimensions [50000, 50000] (10000000000 bytes) but holds 0 bytes",
        ),
        (
            "an unknown operator",
            titanic_with(GraphProto {
                node: vec![node("NoSuchOperator", "input", "strange")],
                ..GraphProto::default()
            }),
            "NoSuchOperator",
        ),
        (
            "a cycle",
            titanic_with(GraphProto {
                node: vec![
                    node("Relu", "ring_b", "ring_a"),
                    node("Relu", "ring_a", "ring_b"),
                ],
                ..GraphProto::default()
            }),
            "ONNX Runtime refuses the graph",
        ),
        (
            "a Loop",
            titanic_with(GraphProto {
                node: vec![node("Loop", "input", "looped")],
                ..GraphProto::default()
            }),
            "the graph has a Loop",
        ),
        (
            "external data",
            titanic_with(GraphProto {
                initializer: vec![external],
                ..GraphProto::default()
            }),
            "which this server never opens",
        ),
    ]
}

/// A FIFO: opening it to read blocks until someone writes, so a loader that opened it would hang.
fn make_fifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo");
    assert!(status.success());
}

#[test]
#[ignore = "needs MNIST_ONNX_DIR and ORT_DYLIB_PATH (.ci/run sets them and runs ignored tests)"]
fn hostile_onnx_files_are_refused_at_load_naming_the_problem() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fifo = dir.path().join("weights.bin");
    make_fifo(&fifo);
    for (what, bytes, expected) in hostile_files(&fifo) {
        let started = Instant::now();
        let message = refusal(dir.path(), "hostile.onnx", &bytes);
        assert!(message.contains(expected), "{what}: {message}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what} took {:?}",
            started.elapsed()
        );
    }
    // TorchScript: a zip with code/ and constants.pkl, alone and as a .mar's serialized file.
    let torchscript = zip_of(&[
        (
            "model/code/__torch__/model.py",
            b"def forward(self, x): return x".as_slice(),
        ),
        ("model/constants.pkl", b"\x80\x02)."),
        ("model/data.pkl", b"\x80\x02}q\x00."),
    ]);
    let message = refusal(dir.path(), "model.pt", &torchscript);
    assert!(
        message.contains("torch.onnx.export(model, example, \"model.onnx\""),
        "{message}"
    );
    let manifest = br#"{"model": {"modelName": "scripted", "serializedFile": "model.pt", "handler": "image_classifier"}}"#;
    let mar = zip_of(&[
        ("MAR-INF/MANIFEST.json", manifest.as_slice()),
        ("model.pt", &torchscript),
    ]);
    let message = refusal(dir.path(), "scripted.mar", &mar);
    assert!(
        message.contains("serializedFile `model.pt`") && message.contains("torch.onnx.export"),
        "{message}"
    );
}

#[test]
#[ignore = "needs MNIST_ONNX_DIR and ORT_DYLIB_PATH (.ci/run sets them and runs ignored tests)"]
fn the_management_api_refuses_hostile_onnx_files_with_a_400_and_keeps_serving() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = dir.path().join("store");
    std::fs::create_dir(&store).expect("store");
    let fifo = dir.path().join("outside.bin");
    make_fifo(&fifo);
    let files = hostile_files(&fifo);
    for (index, (_, bytes, _)) in files.iter().enumerate() {
        std::fs::write(store.join(format!("hostile{index}.onnx")), bytes).expect("write");
    }
    let mut service = service_settings();
    service.model_store = Some(store);
    let app = spawn_managed_app(
        vec![LoadedModel {
            model: upstream_model(),
            url: "mnist-classifier.pt".into(),
            loaded_at_startup: true,
        }],
        service,
    );
    for (index, (what, _, expected)) in files.iter().enumerate() {
        let refused = torchserve_error(
            app.manage(
                Method::POST,
                &format!("/models?url=hostile{index}.onnx"),
                None,
            ),
            400,
            "BadRequestException",
        );
        assert!(refused.contains(expected), "{what}: {refused}");
    }
    let seven = app.torchserve_predict("mnist", crate::helpers::sample(7));
    assert_eq!(seven.text().expect("text"), "7");
}

#[test]
#[ignore = "needs MNIST_ONNX_DIR and ORT_DYLIB_PATH (.ci/run sets them and runs ignored tests)"]
fn thousands_of_mutated_exports_load_or_are_refused_without_a_panic() {
    let original = std::fs::read(onnx_dir().join("titanic.onnx")).expect("titanic.onnx");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("mutant.onnx");
    let limits = settings().load_limits();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut loaded, mut refused) = (0, 0);
    for _ in 0..3_000 {
        let mut bytes = original.clone();
        for _ in 0..=(next() % 4) {
            let at = (next() as usize) % bytes.len().max(1);
            match next() % 4 {
                0 => bytes[at] = next() as u8,
                1 => bytes[at] ^= 1 << (next() % 8),
                2 => bytes.truncate(at.max(1)),
                _ => bytes.insert(at, next() as u8),
            }
        }
        std::fs::write(&path, &bytes).expect("write");
        let source = ModelSource::file(&path);
        match std::panic::catch_unwind(|| max_mnist_core::load(&source, &limits)) {
            Ok(Ok(model)) => {
                // What loads must also answer.
                let zeros = vec![0.0; model.info().input.len()];
                let input = model.pre_process(max_mnist_core::RawInput::Tensor(&zeros));
                if let Ok(input) = input {
                    let _ = model.predict(std::slice::from_ref(&input));
                }
                loaded += 1;
            }
            Ok(Err(_)) => refused += 1,
            Err(_) => panic!("loading a mutated export panicked; bytes kept at {}", {
                let kept = std::env::temp_dir().join("max-mnist-onnx-panic.onnx");
                std::fs::write(&kept, &bytes).expect("keep");
                kept.display().to_string()
            }),
        }
    }
    println!("mutated exports: {loaded} loaded, {refused} refused");
    assert!(
        refused > 1_000,
        "most mutations break the file ({refused} refused)"
    );
}
