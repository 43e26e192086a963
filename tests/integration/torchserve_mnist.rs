//! TorchServe's MNIST example network (`Net`) reproduces PyTorch's outputs and Captum's attributions,
//! loaded from the example's `.mar` and from both checkpoint formats, and is explained with its
//! handler's defaults on every route.

use std::sync::Arc;

use max_mnist_api::LoadedModel;
use max_mnist_core::architectures::net::NORMALISATION;
use max_mnist_core::{DefaultTarget, Model, ModelInput, OutputKind, RawInput};
use serde_json::json;

use crate::exactness::argmax;
use crate::helpers::{
    assert_matches_captum, captum_item, json_numbers, load_model, mnist_test_set, nested_numbers,
    ok_json, reference_predictions, sample, sample_base64, spawn_app_serving, torchserve_dir,
    torchserve_model, torchserve_reference, TestSet,
};
use crate::kserve_v2_routes::{same_attributions, v2_attributions};

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
#[ignore = "needs MNIST_TORCHSERVE_DIR (.ci/run sets it and runs ignored tests)"]
fn all_ten_thousand_predictions_equal_pytorchs_from_the_mar_and_both_checkpoints() {
    let (dir, test_set, reference) = (
        torchserve_dir(),
        mnist_test_set(),
        torchserve_reference("reference-t10k.json"),
    );
    let expected: Vec<usize> = reference_predictions(&reference)
        .into_iter()
        .map(|v| v as usize)
        .collect();
    assert_eq!(expected.len(), 10_000);
    let inputs = net_inputs(&test_set);
    let models: Vec<(&str, Arc<dyn Model>)> = vec![
        ("mnist.mar", torchserve_model()),
        ("mnist_cnn.pt", load_model(&dir.join("mnist_cnn.pt"), None)),
        (
            "mnist_cnn_legacy.pt",
            load_model(&dir.join("mnist_cnn_legacy.pt"), None),
        ),
    ];
    let mut first: Option<Vec<Vec<f32>>> = None;
    for (file, model) in models {
        let info = model.info();
        assert_eq!(info.network.name, "Net", "{file}");
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
#[ignore = "needs MNIST_TORCHSERVE_DIR (.ci/run sets it and runs ignored tests)"]
fn net_explanations_equal_captums() {
    let (model, test_set, reference) = (
        torchserve_model(),
        mnist_test_set(),
        torchserve_reference("captum-ig-t10k.json"),
    );
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
#[ignore = "needs MNIST_TORCHSERVE_DIR (.ci/run sets it and runs ignored tests)"]
fn the_example_archive_describes_the_model() {
    let model = torchserve_model();
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
    assert_eq!(
        info.explanation.target,
        DefaultTarget::Class(0),
        "the handler explains class 0 unless told"
    );
}

/// TorchServe's MNIST handler explains class 0 with 15 steps unless the request names a target
/// (`ts/torch_handler/base_handler.py`, `explain_handle`: `target = row.get("target")`, 0 when
/// absent; `ts/torch_handler/vision_handler.py`, `get_insights`: `n_steps=15`). So do all the
/// routes: TorchServe's `/explanations` (as `curl -T 0.png`), KServe v1 `:explain` (`[N][1][28][28]`,
/// the KServe guide's answer) and v2 `explain` (FP64 `[N,1,28,28]`).
#[test]
#[ignore = "needs MNIST_TORCHSERVE_DIR (.ci/run sets it and runs ignored tests)"]
fn the_archives_model_is_explained_with_its_handlers_defaults_on_every_route() {
    let model = torchserve_model();
    let app = spawn_app_serving(vec![LoadedModel {
        model: model.clone(),
        url: "mnist.mar".into(),
        loaded_at_startup: true,
    }]);
    // A 3: its default explanation (class 0) is not that of its prediction.
    let input = model
        .pre_process(RawInput::File(&sample(3)))
        .expect("a sample");
    let explained = |target: usize, steps: usize| {
        model
            .explain(&input, target, steps)
            .expect("explains")
            .attributions
    };
    let guide_v1 = json!({"instances": [{"data": sample_base64(3)}]});
    let v2_bytes = |parameters: serde_json::Value| {
        json!({"id": "d3b15cad", "parameters": parameters, "inputs": [{"name": "input-0", "shape": [-1],
            "datatype": "BYTES", "data": [sample_base64(3)]}]})
    };

    let (shape, put) = nested_numbers(&ok_json(app.put_bytes("/explanations/mnist", sample(3))));
    assert_eq!(shape, [1, 28, 28]);
    assert!(
        same_attributions(&put, &explained(0, 15)),
        "PUT /explanations"
    );
    let (shape, v1) = nested_numbers(&ok_json(app.v1_explain("mnist", &guide_v1))["explanations"]);
    assert_eq!(shape, [1, 1, 28, 28]);
    assert_eq!(v1, put, "v1 :explain");
    let answer = ok_json(app.v2_explain("mnist", &v2_bytes(json!({}))));
    assert_eq!(answer["id"], "d3b15cad");
    assert_eq!(
        (
            answer["model_name"].as_str(),
            answer["model_version"].as_str()
        ),
        (Some("mnist"), Some("1.0"))
    );
    assert_eq!(v2_attributions(&answer, &[1, 1, 28, 28]), put, "v2 explain");

    // A target named: in the JSON body (TorchServe), the instance (v1), the parameters (v2).
    let seven = explained(7, 15);
    let torchserve = app.post_json(
        "/explanations/mnist",
        &json!({"data": sample_base64(3), "target": 7}),
    );
    assert!(same_attributions(
        &nested_numbers(&ok_json(torchserve)).1,
        &seven
    ));
    let v1 = app.v1_explain(
        "mnist",
        &json!({"instances": [{"data": sample_base64(3), "target": 7}]}),
    );
    assert!(same_attributions(
        &nested_numbers(&ok_json(v1)["explanations"]).1,
        &seven
    ));
    let v2 = ok_json(app.v2_explain("mnist", &v2_bytes(json!({"target": 7}))));
    assert!(same_attributions(
        &v2_attributions(&v2, &[1, 1, 28, 28]),
        &seven
    ));

    // Steps named, with the default target.
    let fifty = explained(0, 50);
    let v1 = app.v1_explain(
        "mnist",
        &json!({"n_steps": 50, "instances": [sample_base64(3)]}),
    );
    assert!(same_attributions(
        &nested_numbers(&ok_json(v1)["explanations"]).1,
        &fifty
    ));
    let v2 = ok_json(app.v2_explain("mnist", &v2_bytes(json!({"steps": 50}))));
    assert!(same_attributions(
        &v2_attributions(&v2, &[1, 1, 28, 28]),
        &fifty
    ));
    app.assert_still_serving();
}
