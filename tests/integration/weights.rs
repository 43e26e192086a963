//! The weights readers on the real upstream checkpoint, the same weights in zip and safetensors
//! form, and damaged or foreign files.

use std::collections::HashMap;
use std::io::{Cursor, Write};

use candle_core::pickle::{Object, Stack};
use candle_core::{DType, Tensor};
use max_mnist_core::architectures::my_convnet::TENSORS as MY_CONVNET_TENSORS;
use max_mnist_core::architectures::StateDict;
use max_mnist_core::weights::{read_tensors, WeightsFormat};
use max_mnist_core::WeightsError;

use crate::helpers::upstream_weights;

/// The file's tensors, recognised as MyConvNet's.
fn read_state_dict(bytes: &[u8]) -> Result<StateDict, WeightsError> {
    let (architecture, state_dict) = max_mnist_core::recognise(read_tensors(bytes)?)?;
    assert_eq!(architecture.network().name, "MyConvNet");
    Ok(state_dict)
}

const NOT_SERVED: &str = "none of the networks this server runs";

fn upstream_bytes() -> Vec<u8> {
    std::fs::read(upstream_weights()).expect("read the upstream weights")
}

fn values(tensor: &Tensor) -> Vec<f32> {
    tensor
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .expect("f32 values")
}

fn assert_same_weights(a: &StateDict, b: &StateDict) {
    assert_eq!(a.len(), 8);
    for (name, _) in MY_CONVNET_TENSORS {
        assert_eq!(values(&a[name]), values(&b[name]), "{name}");
    }
}

fn error_of(bytes: &[u8]) -> WeightsError {
    match read_state_dict(bytes) {
        Ok(_) => panic!("damaged weights were accepted"),
        Err(err) => err,
    }
}

/// The legacy file's parts: the state-dict pickle and each storage's raw data, by key.
fn legacy_parts(bytes: &[u8]) -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
    let mut at = 15; // after the magic-number pickle
    let mut next_pickle = || {
        let mut cursor = Cursor::new(&bytes[at..]);
        let mut stack = Stack::empty();
        stack.read_loop(&mut cursor).expect("a pickle");
        let start = at;
        at += cursor.position() as usize;
        (start, at, stack.finalize().expect("an object"))
    };
    next_pickle(); // protocol version
    next_pickle(); // system info
    let (start, end, _) = next_pickle();
    let state_dict = bytes[start..end].to_vec();
    let (_, mut at, keys) = next_pickle();
    let Object::List(keys) = keys else {
        panic!("storage keys are a list")
    };
    let storages = keys
        .into_iter()
        .map(|key| {
            let Object::Unicode(key) = key else {
                panic!("a key is a string")
            };
            let count = u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes")) as usize;
            let data = bytes[at + 8..at + 8 + 4 * count].to_vec();
            at += 8 + 4 * count;
            (key, data)
        })
        .collect();
    (state_dict, storages)
}

#[test]
fn the_upstream_legacy_checkpoint_loads_with_every_tensor() {
    let bytes = upstream_bytes();
    assert_eq!(
        WeightsFormat::detect(&bytes),
        Some(WeightsFormat::LegacyCheckpoint)
    );
    let state_dict = read_state_dict(&bytes).expect("the upstream checkpoint loads");
    for (name, shape) in MY_CONVNET_TENSORS {
        assert_eq!(state_dict[name].dims(), shape, "{name}");
        assert_eq!(state_dict[name].dtype(), DType::F32);
    }
    // conv1.bias is the second storage: its two floats sit right after conv1.weight's 50.
    let (_, storages) = legacy_parts(&bytes);
    let raw: HashMap<_, _> = storages.into_iter().collect();
    let expected: Vec<f32> = raw["50119152"]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    assert_eq!(values(&state_dict["conv1.bias"]), expected);
}

#[test]
fn a_zip_checkpoint_of_the_same_weights_loads_the_same() {
    let bytes = upstream_bytes();
    let (state_dict_pickle, storages) = legacy_parts(&bytes);
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("mnist-classifier/data.pkl", options)
        .expect("entry");
    zip.write_all(&state_dict_pickle).expect("write");
    for (key, data) in &storages {
        zip.start_file(format!("mnist-classifier/data/{key}"), options)
            .expect("entry");
        zip.write_all(data).expect("write");
    }
    zip.start_file("mnist-classifier/version", options)
        .expect("entry");
    zip.write_all(b"3\n").expect("write");
    let zipped = zip.finish().expect("zip").into_inner();

    assert_eq!(
        WeightsFormat::detect(&zipped),
        Some(WeightsFormat::ZipCheckpoint)
    );
    let from_zip = read_state_dict(&zipped).expect("the zip checkpoint loads");
    assert_same_weights(&from_zip, &read_state_dict(&bytes).expect("legacy"));

    // A storage cut short inside the archive is named.
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    zip.start_file("m/data.pkl", options).expect("entry");
    zip.write_all(&state_dict_pickle).expect("write");
    for (key, data) in &storages {
        zip.start_file(format!("m/data/{key}"), options)
            .expect("entry");
        zip.write_all(&data[..data.len() - 4]).expect("write");
    }
    let short = zip.finish().expect("zip").into_inner();
    let message = error_of(&short).to_string();
    assert!(
        message.contains("truncated") && message.contains("needs"),
        "{message}"
    );
}

fn safetensors_of(tensors: &HashMap<String, Tensor>) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("w.safetensors");
    candle_core::safetensors::save(tensors, &path).expect("save safetensors");
    std::fs::read(&path).expect("read back")
}

#[test]
fn safetensors_of_the_same_weights_load_the_same_and_bad_ones_are_named() {
    let legacy = read_state_dict(&upstream_bytes()).expect("legacy");
    let bytes = safetensors_of(&legacy);
    assert_eq!(
        WeightsFormat::detect(&bytes),
        Some(WeightsFormat::Safetensors)
    );
    assert_same_weights(&read_state_dict(&bytes).expect("safetensors load"), &legacy);

    let mut transposed = legacy.clone();
    transposed.insert(
        "fc1.weight".into(),
        legacy["fc1.weight"]
            .t()
            .and_then(|t| t.contiguous())
            .expect("t"),
    );
    let message = error_of(&safetensors_of(&transposed)).to_string();
    assert!(
        message.contains(NOT_SERVED)
            && message.contains("fc1.weight [96, 32]")
            && message.contains("fc1.weight [32, 96]"),
        "{message}"
    );

    let mut integers = legacy.clone();
    integers.insert(
        "conv1.bias".into(),
        legacy["conv1.bias"].to_dtype(DType::I64).expect("i64"),
    );
    let message = error_of(&safetensors_of(&integers)).to_string();
    assert!(
        message.contains("conv1.bias") && message.contains("I64"),
        "{message}"
    );

    let mut extra = legacy.clone();
    extra.insert("fc3.weight".into(), legacy["fc2.weight"].clone());
    let message = error_of(&safetensors_of(&extra)).to_string();
    assert!(
        message.contains(NOT_SERVED) && message.contains("fc3.weight [10, 32]"),
        "{message}"
    );

    let mut missing = legacy.clone();
    missing.remove("fc2.bias");
    let message = error_of(&safetensors_of(&missing)).to_string();
    let (found, served) = message.split_once("Served:").expect("both lists");
    assert!(
        message.contains(NOT_SERVED)
            && !found.contains("fc2.bias")
            && served.contains("fc2.bias [10]"),
        "{message}"
    );

    let mut half = legacy;
    half.insert(
        "fc2.bias".into(),
        half["fc2.bias"].to_dtype(DType::F16).expect("f16"),
    );
    let loaded = read_state_dict(&safetensors_of(&half)).expect("f16 weights are converted");
    assert_eq!(loaded["fc2.bias"].dtype(), DType::F32);
}

#[test]
fn every_truncation_of_the_checkpoint_is_refused_without_panicking() {
    let bytes = upstream_bytes();
    for len in 0..bytes.len() {
        let err = error_of(&bytes[..len]);
        if len >= 15 {
            assert!(
                matches!(err, WeightsError::Truncated(_) | WeightsError::Malformed(_)),
                "{len} bytes: {err}"
            );
        }
    }
    let message = error_of(&bytes[..bytes.len() - 1]).to_string();
    assert!(message.starts_with("truncated checkpoint"), "{message}");
}

fn replaced(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern present");
    [&bytes[..at], to, &bytes[at + from.len()..]].concat()
}

#[test]
fn damaged_checkpoints_are_refused_with_a_message_naming_the_problem() {
    let bytes = upstream_bytes();

    let renamed = replaced(&bytes, b"fc2.bias", b"fc2.bia5");
    let message = error_of(&renamed).to_string();
    assert!(
        message.contains(NOT_SERVED) && message.contains("fc2.bia5 [10]"),
        "{message}"
    );

    let foreign_storage = replaced(&bytes, b"FloatStorage", b"FloatStorag3");
    let message = error_of(&foreign_storage).to_string();
    assert!(
        message.contains("FloatStorag3") && message.contains("floating-point"),
        "{message}"
    );

    // conv1.bias claims 3 elements of a 2-element storage
    let oversized = replaced(&bytes, b"K\x00K\x02\x85", b"K\x00K\x03\x85");
    let message = error_of(&oversized).to_string();
    assert!(message.contains("outside its storage"), "{message}");

    let mut trailing = bytes.clone();
    trailing.extend_from_slice(b"junk");
    let message = error_of(&trailing).to_string();
    assert!(message.contains("4 unexpected bytes"), "{message}");

    for foreign in [&b""[..], b"hello", b"<html>not found</html>", &[0u8; 64]] {
        assert!(matches!(error_of(foreign), WeightsError::UnknownFormat));
    }
}

#[test]
fn a_missing_file_names_its_path() {
    let source = max_mnist_core::ModelSource::file("/nonexistent/w.pt");
    let err = max_mnist_core::load(&source, &crate::helpers::settings().load_limits())
        .err()
        .expect("no such file");
    assert!(err.to_string().contains("/nonexistent/w.pt"), "{err}");
}
