//! TorchServe's routes answer as the TorchServe MNIST example does, over real HTTP.

use max_mnist_core::{Model, RawInput};
use reqwest::blocking::multipart::Form;
use serde_json::{json, Value};

use crate::helpers::{
    image_form, ok_json as digit, sample, sample_base64, spawn_app, torchserve_error,
};

#[test]
fn every_body_torchserve_accepts_gives_the_digit() {
    let app = spawn_app();
    for d in 0..10u8 {
        // `curl -T 7.png URL` sends the raw file with PUT; `--data-binary @7.png` with POST.
        let put = app.torchserve_predict("mnist", sample(d));
        assert_eq!(digit(put), json!(d));
        let post = app
            .client
            .post(app.url("/predictions/mnist/1"))
            .header("content-type", "application/octet-stream")
            .body(sample(d))
            .send();
        assert_eq!(digit(post.expect("POST")), json!(d));
    }
    for field in ["data", "file"] {
        let response = app.post_form("/predictions/mnist", image_form(field, sample(4)));
        assert_eq!(digit(response), json!(4), "field {field}");
    }
    let encoded = sample_base64(9);
    for body in [json!({ "data": encoded }), json!({ "body": encoded })] {
        let response = app.post_json("/predictions/mnist", &body);
        assert_eq!(digit(response), json!(9));
    }
}

#[test]
fn unknown_models_and_versions_are_404s_in_torchserves_shape() {
    let app = spawn_app();
    for path in [
        "/predictions/resnet",
        "/predictions/mnist/2",
        "/models/resnet",
    ] {
        let response = if path.starts_with("/models") {
            app.get(path)
        } else {
            app.post_bytes(path, sample(1))
        };
        let message = torchserve_error(response, 404, "ModelNotFoundException");
        assert!(message.contains("mnist"), "{path}: {message}");
    }
    app.assert_still_serving();
}

#[test]
fn bad_bodies_are_400s_in_torchserves_shape() {
    let app = spawn_app();
    let post = |body: reqwest::blocking::RequestBuilder| body.send().expect("POST");
    let endpoint = app.url("/predictions/mnist");
    let cases = [
        (post(app.client.post(&endpoint)), "empty"),
        (
            post(app.client.post(&endpoint).body("seven")),
            "not an image",
        ),
        (
            post(
                app.client
                    .post(&endpoint)
                    .json(&json!({"data": "not base64!"})),
            ),
            "base64",
        ),
        (
            post(app.client.post(&endpoint).json(&json!({"image": "x"}))),
            "JSON",
        ),
        (
            post(
                app.client
                    .post(&endpoint)
                    .multipart(Form::new().text("top_k", "1")),
            ),
            "`data` or `file`",
        ),
    ];
    for (response, says) in cases {
        let message = torchserve_error(response, 400, "BadRequestException");
        assert!(message.contains(says), "{says}: {message}");
    }
    app.assert_still_serving();
}

#[test]
fn the_management_routes_describe_the_model() {
    let app = spawn_app();
    let models: Value = app.get("/models").json().expect("JSON");
    assert_eq!(
        models,
        json!({"models": [{"modelName": "mnist", "modelUrl": "mnist-classifier.pt"}]})
    );
    let described: Value = app.get("/models/mnist").json().expect("JSON");
    assert_eq!(described[0]["modelName"], "mnist");
    assert_eq!(described[0]["modelVersion"], "1");
    assert_eq!(described[0]["architecture"], "MyConvNet");
    assert_eq!(described[0]["workers"][0]["status"], "READY");
}

#[test]
fn explanations_are_integrated_gradients_of_15_steps_in_torchserves_shape() {
    let app = spawn_app();
    let model = crate::helpers::upstream_model();
    let input = model
        .pre_process(RawInput::File(&sample(3)))
        .expect("a sample");
    let attributions = |response: reqwest::blocking::Response| -> Vec<f64> {
        assert_eq!(response.status(), 200);
        let body: Value = response.json().expect("JSON");
        let outer = body.as_array().expect("[[[…]]]");
        assert_eq!(outer.len(), 1);
        let rows = outer[0].as_array().expect("rows");
        assert_eq!(rows.len(), 28);
        rows.iter().flat_map(crate::helpers::json_numbers).collect()
    };
    let close = |served: &[f64], target: usize| {
        let expected = model.explain(&input, target, 15).expect("explains");
        served
            .iter()
            .zip(&expected.attributions)
            .all(|(a, b)| (a - f64::from(*b)).abs() < 1e-6)
    };
    let raw = app.torchserve_explain("mnist", sample(3));
    assert!(
        close(&attributions(raw), 3),
        "default target: the prediction"
    );
    let encoded = sample_base64(3);
    let json_body = app.post_json(
        "/explanations/mnist",
        &json!({"data": encoded, "target": 5}),
    );
    assert!(close(&attributions(json_body), 5), "target from JSON");
    let form = app.post_form(
        "/explanations/mnist",
        image_form("data", sample(3)).text("target", "8"),
    );
    assert!(close(&attributions(form), 8), "target from the form");

    let bad = app.post_json(
        "/explanations/mnist",
        &json!({"data": encoded, "target": 12}),
    );
    let message = torchserve_error(bad, 400, "BadRequestException");
    assert!(message.contains("from 0 to 9, got 12"), "{message}");
    let other = app.torchserve_explain("resnet", sample(3));
    torchserve_error(other, 404, "ModelNotFoundException");
    app.assert_still_serving();
}
