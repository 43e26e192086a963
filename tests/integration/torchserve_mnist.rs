//! TorchServe's MNIST example network (`Net`) reproduces PyTorch's outputs and Captum's attributions,
//! loaded from the example's `.mar` and from both checkpoint formats.

use std::sync::Arc;

use max_mnist_core::architectures::net::NORMALISATION;
use max_mnist_core::{Architecture, Model, ModelInput, OutputKind};

use crate::exactness::argmax;
use crate::helpers::{
    assert_matches_captum, captum_item, json_numbers, load_model, mnist_test_set,
    reference_predictions, torchserve_dir, torchserve_model, torchserve_reference, TestSet,
};

const LOG_PROBABILITY_TOLERANCE: f64 = 1e-4;

/// The t10k images with the example's input transform.
fn net_inputs(test_set: &TestSet) -> Vec<ModelInput> {
    test_set
        .images
        .iter()
        .map(|pixels| ModelInput(pixels.iter().map(|&p| NORMALISATION.pixel(p)).collect()))
        .collect()
}

fn log_probabilities(model: &dyn Model, inputs: &[ModelInput]) -> Vec<Vec<f32>> {
    inputs
        .chunks(250)
        .flat_map(|batch| model.predict(batch).expect("forward"))
        .map(|output| output.0)
        .collect()
}

#[test]
fn all_ten_thousand_predictions_equal_pytorchs_from_the_mar_and_both_checkpoints() {
    let (Some(dir), Some(test_set), Some(reference)) = (
        torchserve_dir(),
        mnist_test_set(),
        torchserve_reference("reference-t10k.json"),
    ) else {
        return;
    };
    let expected: Vec<usize> = reference_predictions(&reference)
        .into_iter()
        .map(|v| v as usize)
        .collect();
    assert_eq!(expected.len(), 10_000);
    let inputs = net_inputs(&test_set);
    let models: Vec<(&str, Arc<dyn Model>)> = vec![
        (
            "mnist.mar",
            torchserve_model().expect("the example's model"),
        ),
        ("mnist_cnn.pt", load_model(&dir.join("mnist_cnn.pt"), None)),
        (
            "mnist_cnn_legacy.pt",
            load_model(&dir.join("mnist_cnn_legacy.pt"), None),
        ),
    ];
    let mut first: Option<Vec<Vec<f32>>> = None;
    for (file, model) in models {
        let info = model.info();
        assert_eq!(info.architecture, Architecture::Net, "{file}");
        assert_eq!(info.output.kind, OutputKind::LogProbabilities);
        let outputs = log_probabilities(model.as_ref(), &inputs);
        let mismatches: Vec<usize> = (0..10_000)
            .filter(|&i| argmax(&outputs[i]) != expected[i])
            .collect();
        assert!(
            mismatches.is_empty(),
            "{file}: argmax differs from PyTorch on images {mismatches:?}"
        );
        let correct = (0..10_000)
            .filter(|&i| argmax(&outputs[i]) == usize::from(test_set.labels[i]))
            .count();
        assert_eq!(correct, 9_777, "{file}");
        let mut worst = 0f64;
        for item in reference["first_100"].as_array().expect("first_100") {
            let index = item["index"].as_u64().expect("index") as usize;
            for (got, want) in outputs[index]
                .iter()
                .zip(json_numbers(&item["log_probabilities"]))
            {
                worst = worst.max((f64::from(*got) - want).abs());
            }
        }
        assert!(
            worst <= LOG_PROBABILITY_TOLERANCE,
            "{file}: log-probabilities differ from PyTorch's by up to {worst}"
        );
        println!("{file}: 10,000 argmaxes equal PyTorch's, {correct} right, worst log-probability difference {worst:.1e}");
        match &first {
            None => first = Some(outputs),
            Some(first) => assert_eq!(
                first, &outputs,
                "{file}: the same weights, the same outputs"
            ),
        }
    }
}

#[test]
fn net_explanations_equal_captums() {
    let (Some(model), Some(test_set), Some(reference)) = (
        torchserve_model(),
        mnist_test_set(),
        torchserve_reference("captum-ig-t10k.json"),
    ) else {
        return;
    };
    let items = reference["items"].as_array().expect("items");
    assert!(items.len() >= 18);
    let inputs = net_inputs(&test_set);
    for item in items {
        let (index, target, steps) = captum_item(item);
        let explanation = model
            .explain(&inputs[index], target, steps)
            .expect("explains");
        let captum_delta = assert_matches_captum(&explanation, item);
        assert!(
            (f64::from(explanation.convergence_delta) - captum_delta).abs() <= 1e-3,
            "image {index}: delta {} vs Captum's {captum_delta}",
            explanation.convergence_delta
        );
    }
}

#[test]
fn the_example_archive_describes_the_model() {
    let Some(model) = torchserve_model() else {
        return;
    };
    let info = model.info();
    assert_eq!(
        (info.name.as_str(), info.version.as_str()),
        ("mnist", "1.0")
    );
    assert_eq!(info.input.shape, [1, 28, 28]);
    let labels: Vec<String> = (0..10).map(|d: u8| d.to_string()).collect();
    assert_eq!(
        info.output.labels, labels,
        "no index_to_name.json: the digits"
    );
    assert_eq!(
        info.explanation.steps, 15,
        "TorchServe's image handlers use 15"
    );
}
