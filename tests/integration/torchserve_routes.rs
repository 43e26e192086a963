//! TorchServe's routes answer as the TorchServe MNIST example does, over real HTTP.

use base64::Engine;
use max_mnist_core::DigitModel;
use reqwest::blocking::multipart::Form;
use serde_json::{json, Value};

use crate::helpers::{image_form, sample, spawn_app, TestApp};

/// TorchServe's error body: asserts status, `code` and `type`; returns the message.
fn torchserve_error(response: reqwest::blocking::Response, status: u16, kind: &str) -> String {
    assert_eq!(response.status(), status);
    let body: Value = response.json().expect("an error body is JSON");
    assert_eq!(body["code"], status, "{body}");
    assert_eq!(body["type"], kind, "{body}");
    body["message"].as_str().expect("a message").to_owned()
}

fn digit(response: reqwest::blocking::Response) -> Value {
    assert_eq!(response.status(), 200);
    response.json().expect("JSON")
}

fn url(app: &TestApp, path: &str) -> String {
    format!("{}{path}", app.address)
}

#[test]
fn every_body_torchserve_accepts_gives_the_digit() {
    let app = spawn_app();
    for d in 0..10u8 {
        // `curl -T 7.png URL` sends the raw file with PUT; `--data-binary @7.png` with POST.
        let put = app
            .client
            .put(url(&app, "/predictions/mnist"))
            .body(sample(d))
            .send();
        assert_eq!(digit(put.expect("PUT")), json!(d));
        let post = app
            .client
            .post(url(&app, "/predictions/mnist/1"))
            .header("content-type", "application/octet-stream")
            .body(sample(d))
            .send();
        assert_eq!(digit(post.expect("POST")), json!(d));
    }
    for field in ["data", "file"] {
        let response = app.post_form("/predictions/mnist", image_form(field, sample(4)));
        assert_eq!(digit(response), json!(4), "field {field}");
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(sample(9));
    for body in [json!({ "data": encoded }), json!({ "body": encoded })] {
        let response = app
            .client
            .post(url(&app, "/predictions/mnist"))
            .json(&body)
            .send()
            .expect("POST JSON");
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
            app.client
                .post(url(&app, path))
                .body(sample(1))
                .send()
                .expect("POST")
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
    let endpoint = url(&app, "/predictions/mnist");
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
fn the_management_routes_describe_the_one_model() {
    let app = spawn_app();
    let models: Value = app.get("/models").json().expect("JSON");
    assert_eq!(
        models,
        json!({"models": [{"modelName": "mnist", "modelUrl": "mnist.mar"}]})
    );
    let described: Value = app.get("/models/mnist").json().expect("JSON");
    assert_eq!(described[0]["modelName"], "mnist");
    assert_eq!(described[0]["modelVersion"], "1");
    assert_eq!(described[0]["status"], "READY");
}

#[test]
fn explanations_are_integrated_gradients_of_15_steps_in_torchserves_shape() {
    let app = spawn_app();
    let model = crate::helpers::upstream_model();
    let input = model.pre_process(&sample(3)).expect("a sample");
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
    let raw = app
        .client
        .post(url(&app, "/explanations/mnist"))
        .body(sample(3))
        .send();
    assert!(
        close(&attributions(raw.expect("POST")), 3),
        "default target: the prediction"
    );
    let encoded = base64::engine::general_purpose::STANDARD.encode(sample(3));
    let json_body = app
        .client
        .post(url(&app, "/explanations/mnist"))
        .json(&json!({"data": encoded, "target": 5}))
        .send();
    assert!(
        close(&attributions(json_body.expect("POST")), 5),
        "target from JSON"
    );
    let form = app.post_form(
        "/explanations/mnist",
        image_form("data", sample(3)).text("target", "8"),
    );
    assert!(close(&attributions(form), 8), "target from the form");

    let bad = app
        .client
        .post(url(&app, "/explanations/mnist"))
        .json(&json!({"data": encoded, "target": 12}))
        .send()
        .expect("POST");
    torchserve_error(bad, 400, "BadRequestException");
    let other = app
        .client
        .post(url(&app, "/explanations/resnet"))
        .body(sample(3))
        .send();
    torchserve_error(other.expect("POST"), 404, "ModelNotFoundException");
    app.assert_still_serving();
}
