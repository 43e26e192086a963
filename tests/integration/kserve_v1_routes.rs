//! KServe's v1 protocol over real HTTP: listing, readiness, `:predict` with every instance spelling,
//! a batch in one request equal to single requests, and `{"error": …}` refusals.

use max_mnist_core::{Model, RawInput};
use serde_json::{json, Value};

use crate::helpers::{
    kserve_error, sample, sample_base64 as base64_sample, sample_pixels, settings, spawn_app,
};

pub fn predictions(response: reqwest::blocking::Response) -> Vec<u64> {
    assert_eq!(response.status(), 200);
    let body: Value = response.json().expect("JSON");
    body["predictions"]
        .as_array()
        .expect("predictions")
        .iter()
        .map(|p| p.as_u64().expect("a digit"))
        .collect()
}

/// A sample's pixels as a [28,28] tensor of intensities in 0..1.
pub fn tensor_sample(digit: u8) -> Value {
    let rows: Vec<Vec<f64>> = sample_pixels(digit)
        .chunks_exact(28)
        .map(|row| row.iter().map(|&p| f64::from(p) / 255.0).collect())
        .collect();
    json!(rows)
}

#[test]
fn listing_and_readiness_name_the_model() {
    let app = spawn_app();
    let models: Value = app.get("/v1/models").json().expect("JSON");
    assert_eq!(models, json!({"models": ["mnist"]}));
    let status: Value = app.get("/v1/models/mnist").json().expect("JSON");
    assert_eq!(status, json!({"name": "mnist", "ready": true}));
    assert!(kserve_error(app.get("/v1/models/resnet"), 404).contains("mnist"));
}

#[test]
fn every_instance_spelling_gives_the_digit() {
    let app = spawn_app();
    let mut instances = Vec::new();
    let mut expected = Vec::new();
    for digit in 0..10u8 {
        let tensor = tensor_sample(digit);
        instances.push(json!({"data": base64_sample(digit)}));
        instances.push(json!(base64_sample(digit)));
        instances.push(tensor.clone());
        instances.push(json!([tensor.clone()]));
        let flat: Vec<f64> = tensor
            .as_array()
            .expect("rows")
            .iter()
            .flat_map(|row| {
                row.as_array()
                    .expect("row")
                    .iter()
                    .map(|v| v.as_f64().expect("f64") * 255.0)
            })
            .collect();
        instances.push(json!(flat));
        expected.extend([u64::from(digit); 5]);
    }
    let answer = predictions(app.v1_predict("mnist", &json!({ "instances": instances })));
    assert_eq!(answer, expected);
}

#[test]
fn a_batch_of_64_equals_64_single_requests() {
    let app = spawn_app();
    let instances: Vec<Value> = (0..64u8)
        .map(|i| json!({"data": base64_sample(i % 10)}))
        .collect();
    let batch = predictions(app.v1_predict("mnist", &json!({ "instances": instances })));
    let singles: Vec<u64> = instances
        .iter()
        .flat_map(|instance| {
            predictions(app.v1_predict("mnist", &json!({ "instances": [instance] })))
        })
        .collect();
    assert_eq!(batch.len(), 64);
    assert_eq!(batch, singles);
    assert_eq!(batch, (0..64u64).map(|i| i % 10).collect::<Vec<_>>());
}

#[test]
fn bad_requests_get_a_kserve_error_and_the_server_keeps_serving() {
    let app = spawn_app();
    let limit = settings().limits.max_instances;
    let too_many: Vec<Value> = (0..=limit).map(|_| json!(base64_sample(1))).collect();
    let message = kserve_error(
        app.v1_predict("mnist", &json!({ "instances": too_many })),
        400,
    );
    assert!(message.contains("limits.max_instances"), "{message}");
    let cases = [
        (json!({"instances": []}), "no instances"),
        (json!({"inputs": [1]}), "instances"),
        (json!({"instances": [{"data": "%%%"}]}), "instance 0"),
        (json!({"instances": [base64_sample(2), 7]}), "instance 1"),
        (json!({"instances": [vec![0.5; 783]]}), "shape [783]"),
        (json!({"instances": [vec![300.0; 784]]}), "300"),
    ];
    for (body, says) in cases {
        let message = kserve_error(app.v1_predict("mnist", &body), 400);
        assert!(message.contains(says), "{body}: {message}");
    }
    assert!(
        kserve_error(app.v1_predict("resnet", &json!({"instances": []})), 404).contains("mnist")
    );
    app.assert_still_serving();
}

#[test]
fn explain_gives_integrated_gradients_per_instance() {
    let app = spawn_app();
    let model = crate::helpers::upstream_model();
    let body = json!({"instances": [
        {"data": base64_sample(3)},
        {"data": base64_sample(3), "target": 8},
        tensor_sample(4),
    ]});
    let response = app.v1_explain("mnist", &body);
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().expect("JSON");
    let explanations = answer["explanations"].as_array().expect("explanations");
    assert_eq!(explanations.len(), 3);
    for (explanation, (digit, target)) in explanations.iter().zip([(3u8, 3), (3, 8), (4, 4)]) {
        let served: Vec<f64> = explanation
            .as_array()
            .expect("rows")
            .iter()
            .flat_map(crate::helpers::json_numbers)
            .collect();
        let input = model
            .pre_process(RawInput::File(&sample(digit)))
            .expect("a sample");
        let expected = model.explain(&input, target, 15).expect("explains");
        assert_eq!(served.len(), 784);
        for (a, b) in served.iter().zip(&expected.attributions) {
            assert!(
                (a - f64::from(*b)).abs() < 1e-5,
                "digit {digit}, target {target}"
            );
        }
    }
    let bad = app.v1_explain(
        "mnist",
        &json!({"instances": [{"data": base64_sample(3), "target": "eight"}]}),
    );
    assert!(kserve_error(bad, 400).contains("target"));
    let out_of_range = app.v1_explain(
        "mnist",
        &json!({"instances": [{"data": base64_sample(3)}, {"data": base64_sample(3), "target": 10}]}),
    );
    let message = kserve_error(out_of_range, 400);
    assert!(
        message.contains("instance 1: target must be a class from 0 to 9"),
        "{message}"
    );
    app.assert_still_serving();
}
