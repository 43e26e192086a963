//! KServe's v1 protocol over real HTTP: listing, readiness, `:predict` with every instance spelling,
//! a batch in one request equal to single requests, `:explain` in the KServe guide's shape, and
//! `{"error": …}` refusals.

use max_mnist_core::{Model, RawInput};
use serde_json::{json, Value};

use crate::helpers::{
    kserve_error, nested_numbers, ok_json, sample, sample_base64 as base64_sample, sample_pixels,
    settings, spawn_app,
};
use crate::kserve_v2_routes::same_attributions;

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
fn explain_gives_integrated_gradients_per_instance_in_the_guides_shape() {
    let app = spawn_app();
    let model = crate::helpers::upstream_model();
    let explained = |digit: u8, target: usize, steps: usize| {
        let input = model
            .pre_process(RawInput::File(&sample(digit)))
            .expect("a sample");
        model
            .explain(&input, target, steps)
            .expect("explains")
            .attributions
    };
    let body = json!({"instances": [
        {"data": base64_sample(3)},
        {"data": base64_sample(3), "target": 8},
        tensor_sample(4),
    ]});
    let answer = ok_json(app.v1_explain("mnist", &body));
    let (shape, served) = nested_numbers(&answer["explanations"]);
    assert_eq!(
        shape,
        [3, 1, 28, 28],
        "[N][1][28][28], as the KServe guide's answer"
    );
    // MAX's model: of the predicted digit unless the instance names a target, with 15 steps.
    for (index, (digit, target)) in [(3u8, 3), (3, 8), (4, 4)].into_iter().enumerate() {
        assert!(
            same_attributions(
                &served[index * 784..(index + 1) * 784],
                &explained(digit, target, 15)
            ),
            "digit {digit}, target {target}"
        );
    }

    // The request's own target and steps (also under Captum's name, `n_steps`), for the
    // instances that name none.
    for steps in ["steps", "n_steps"] {
        let body = json!({"target": 6, steps: 40, "instances": [
            {"data": base64_sample(3)},
            {"data": base64_sample(3), "target": 8},
        ]});
        let (_, served) = nested_numbers(&ok_json(app.v1_explain("mnist", &body))["explanations"]);
        assert!(
            same_attributions(&served[..784], &explained(3, 6, 40)),
            "{steps}"
        );
        assert!(
            same_attributions(&served[784..], &explained(3, 8, 40)),
            "{steps}"
        );
    }

    let cases = [
        (
            json!({"instances": [{"data": base64_sample(3), "target": "eight"}]}),
            "instance 0: target must be a whole number",
        ),
        (
            json!({"instances": [{"data": base64_sample(3)}, {"data": base64_sample(3), "target": 10}]}),
            "instance 1: target must be a class from 0 to 9",
        ),
        (
            json!({"target": -2, "instances": [base64_sample(3)]}),
            "target must be a whole number",
        ),
        (
            json!({"steps": 0, "instances": [base64_sample(3)]}),
            "steps must be from 1 to 512, got 0",
        ),
        (
            json!({"n_steps": "many", "instances": [base64_sample(3)]}),
            "steps must be a whole number",
        ),
        (json!({"instances": []}), "no instances"),
    ];
    for (body, says) in cases {
        let message = kserve_error(app.v1_explain("mnist", &body), 400);
        assert!(message.contains(says), "{body}: {message}");
    }
    app.assert_still_serving();
}
