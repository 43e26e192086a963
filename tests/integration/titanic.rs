//! The TorchServe + Captum Titanic example's network reproduces PyTorch's probabilities and
//! Captum's attributions for every passenger of the example's test files, from encoded features and
//! from the raw `titanic3.csv` columns alike.

use max_mnist_core::records::{parse_csv, Field, Record};
use max_mnist_core::{Explanation, ModelInput, RawInput};
use serde_json::Value;

use crate::helpers::{json_numbers, titanic_dir, titanic_model, titanic_reference};

pub const TEST_FILES: [(&str, &str); 2] = [
    ("titanic_survived.csv", "survived_csv"),
    ("titanic_not_survived.csv", "not_survived_csv"),
];
const FEATURES: [&str; 12] = [
    "age", "sibsp", "parch", "fare", "female", "male", "embark_C", "embark_Q", "embark_S",
    "class_1", "class_2", "class_3",
];

/// The passengers of a test file, as records of the 12 encoded features.
pub fn test_records(file: &str) -> Vec<Record> {
    let dir = titanic_dir();
    let bytes = std::fs::read(dir.join("test_data").join(file)).expect("read a test file");
    parse_csv(&bytes, 1000).expect("the test file parses")
}

/// The same passenger as `titanic3.csv`'s raw columns.
fn raw_record(encoded: &[f32]) -> Record {
    let one_of = |from: usize, names: [&str; 3]| {
        (0..3)
            .find(|&i| encoded[from + i] == 1.0)
            .map_or(Field::Missing, |i| Field::Text(names[i].to_owned()))
    };
    let sex = if encoded[4] == 1.0 { "female" } else { "male" };
    Record(vec![
        ("pclass".into(), one_of(9, ["1", "2", "3"])),
        ("name".into(), Field::Text("Doe, Mr. John".into())),
        ("sex".into(), Field::Text(sex.into())),
        ("age".into(), Field::Number(f64::from(encoded[0]))),
        ("sibsp".into(), Field::Number(f64::from(encoded[1]))),
        ("parch".into(), Field::Number(f64::from(encoded[2]))),
        ("ticket".into(), Field::Text("A/5 21171".into())),
        ("fare".into(), Field::Number(f64::from(encoded[3]))),
        ("embarked".into(), one_of(6, ["C", "Q", "S"])),
    ])
}

/// Within `tolerance` × the largest of `expected` (× 1 when all of them are 0).
pub fn assert_close_to_largest(actual: &[f32], expected: &[f64], tolerance: f64, what: &str) {
    let largest = expected.iter().fold(0f64, |m, v| m.max(v.abs()));
    let largest = if largest == 0.0 { 1.0 } else { largest };
    let worst = actual
        .iter()
        .zip(expected)
        .map(|(a, e)| (f64::from(*a) - e).abs())
        .fold(0f64, f64::max);
    assert_eq!(actual.len(), expected.len(), "{what}");
    assert!(
        worst <= tolerance * largest,
        "{what}: {worst:e} > {tolerance:e} × {largest}"
    );
}

/// The per-feature mean of explanations.
pub fn mean_attributions(explanations: &[Explanation]) -> Vec<f32> {
    Explanation::mean(explanations)
        .expect("some explanations")
        .attributions
}

/// A reference mean, `{"age": …}`, in feature order.
pub fn reference_mean(means: &Value) -> Vec<f64> {
    FEATURES
        .iter()
        .map(|f| means[*f].as_f64().expect("a mean per feature"))
        .collect()
}

#[test]
#[ignore = "needs MNIST_TITANIC_DIR (.ci/run sets it and runs ignored tests)"]
fn every_test_passenger_gets_pytorchs_probabilities_and_captums_attributions() {
    let (model, reference) = (titanic_model(), titanic_reference());
    let info = model.info();
    assert_eq!(info.output.labels, ["Not Survived", "Survived"]);
    assert_eq!(info.input.feature_names, FEATURES);
    let mut worst_probability = 0f64;
    for (file, key) in TEST_FILES {
        let records = test_records(file);
        let rows = reference[key]["rows"].as_array().expect("rows");
        assert_eq!(records.len(), rows.len(), "{file}");
        let inputs: Vec<ModelInput> = records
            .iter()
            .map(|r| model.pre_process(RawInput::Record(r)).expect("encodes"))
            .collect();
        let outputs = model.predict(&inputs).expect("predicts");
        let mut explanations = Vec::new();
        for (index, ((input, output), row)) in inputs.iter().zip(&outputs).zip(rows).enumerate() {
            let expected = json_numbers(&row["probabilities"]);
            for (got, want) in output.0.iter().zip(&expected) {
                worst_probability = worst_probability.max((f64::from(*got) - want).abs());
            }
            assert_eq!(
                model.post_process(output).class as u64,
                row["prediction"].as_u64().expect("prediction"),
                "{file} row {index}"
            );
            let explanation = model.explain(input, 1, 50).expect("explains");
            assert_close_to_largest(
                &explanation.attributions,
                &json_numbers(&row["attributions_target1"]),
                1e-4,
                &format!("{file} row {index}"),
            );
            // The same passenger from the raw columns: the same probabilities.
            let raw = model
                .pre_process(RawInput::Record(&raw_record(&input.0)))
                .expect("raw columns encode");
            assert_eq!(raw, *input, "{file} row {index} from raw columns");
            explanations.push(explanation);
        }
        let means = &reference[key];
        assert_close_to_largest(
            &mean_attributions(&explanations),
            &reference_mean(&means["mean_attributions_target1"]),
            1e-4,
            &format!("{file}: mean, target 1"),
        );
        let of = |target: usize, steps: usize| -> Vec<Explanation> {
            inputs
                .iter()
                .map(|input| model.explain(input, target, steps).expect("explains"))
                .collect()
        };
        assert_close_to_largest(
            &mean_attributions(&of(0, 50)),
            &reference_mean(&means["mean_attributions_target0"]),
            1e-4,
            &format!("{file}: mean, target 0"),
        );
        assert_close_to_largest(
            &mean_attributions(&of(1, 15)),
            &reference_mean(&means["mean_attributions_target1_15_steps"]),
            1e-4,
            &format!("{file}: mean, 15 steps"),
        );
    }
    println!("Titanic: worst probability difference from PyTorch {worst_probability:e}");
    assert!(worst_probability <= 1e-6, "{worst_probability}");
}

#[test]
#[ignore = "needs MNIST_TITANIC_DIR (.ci/run sets it and runs ignored tests)"]
fn every_passenger_of_titanic3_csv_is_read_from_its_raw_columns() {
    let (model, dir) = (titanic_model(), titanic_dir());
    let bytes = std::fs::read(dir.join("titanic3.csv")).expect("read titanic3.csv");
    let records = parse_csv(&bytes, 2000).expect("parses");
    assert_eq!(records.len(), 1309);
    let inputs: Vec<ModelInput> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            model
                .pre_process(RawInput::Record(r))
                .unwrap_or_else(|err| panic!("row {}: {err}", i + 1))
        })
        .collect();
    let survived: Vec<bool> = records
        .iter()
        .map(|r| r.get("survived").and_then(Field::text).as_deref() == Some("1"))
        .collect();
    let right = model
        .predict(&inputs)
        .expect("predicts")
        .iter()
        .zip(&survived)
        .filter(|(output, &survived)| (model.post_process(output).class == 1) == survived)
        .count();
    let accuracy = right as f64 / 1309.0;
    println!("titanic3.csv: {right} of 1309 right ({accuracy:.3})");
    assert!(
        accuracy > 0.78,
        "{accuracy}: the training split scored 0.81, the test split 0.84"
    );
}
