//! Integrated Gradients equal to Captum's on the upstream weights; TorchServe's `/explanations`
//! taking a PUT (`curl -T`) as its predictions do.

use max_mnist_core::architectures::my_convnet::NORMALISATION;
use max_mnist_core::{Model, ModelInput, RawInput};

use crate::helpers::{
    assert_matches_captum, captum_item, json_numbers, mnist_test_set, nested_numbers, ok_json,
    png_body, reference, sample, spawn_app, torchserve_error, upstream_model,
};
use crate::kserve_v2_routes::same_attributions;

#[test]
#[ignore = "needs MNIST_REFERENCE_DIR (.ci/run sets it and runs ignored tests)"]
fn integrated_gradients_equal_captums() {
    let (reference, test_set) = (reference("captum-ig-t10k.json"), mnist_test_set());
    let model = upstream_model();
    let items = reference["items"].as_array().expect("items");
    assert!(!items.is_empty());
    for item in items {
        let (index, target, steps) = captum_item(item);
        let input = ModelInput(
            test_set.images[index]
                .iter()
                .map(|&p| NORMALISATION.pixel(p))
                .collect(),
        );
        let explanation = model.explain(&input, target, steps).expect("explains");
        let captum_delta = assert_matches_captum(&explanation, item);
        assert!(
            f64::from(explanation.convergence_delta.abs()) <= captum_delta.abs() + 1e-4,
            "image {index}, {steps} steps: delta {} vs Captum's {captum_delta}",
            explanation.convergence_delta
        );
    }
}

/// MyConvNet is piecewise linear along the path, so the quadrature converges with kinks, not
/// monotonically for every image: each image ends close, and the mean error falls step by step.
#[test]
fn attributions_add_up_to_the_logits_rise_as_steps_grow() {
    let model = upstream_model();
    let steps = [8, 32, 128, 512];
    let mut mean = [0f32; 4];
    for digit in 0..10u8 {
        let input = model
            .pre_process(RawInput::File(&crate::helpers::sample(digit)))
            .expect("a sample");
        let deltas: Vec<f32> = steps
            .iter()
            .map(|&steps| {
                model
                    .explain(&input, usize::from(digit), steps)
                    .expect("explains")
                    .convergence_delta
                    .abs()
            })
            .collect();
        assert!(
            deltas[3] < 0.01 && deltas[3] < deltas[0],
            "digit {digit}: |delta| for {steps:?} steps: {deltas:?}"
        );
        for (sum, delta) in mean.iter_mut().zip(&deltas) {
            *sum += delta / 10.0;
        }
    }
    assert!(
        mean.windows(2).all(|pair| pair[1] < pair[0]),
        "mean |delta| for {steps:?} steps: {mean:?}"
    );
}

#[test]
fn the_explain_route_answers_json_and_a_heatmap() {
    let app = crate::helpers::spawn_app();
    let model = upstream_model();
    let form = |target: Option<&str>, steps: Option<&str>| {
        let mut form = crate::helpers::image_form("file", crate::helpers::sample(7));
        if let Some(target) = target {
            form = form.text("target", target.to_owned());
        }
        if let Some(steps) = steps {
            form = form.text("steps", steps.to_owned());
        }
        form
    };
    let body: serde_json::Value = app
        .post_form("/model/explain", form(None, None))
        .json()
        .expect("JSON");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["prediction"], 7);
    assert_eq!(body["target"], 7, "the default target is the prediction");
    let rows = body["attributions"].as_array().expect("rows");
    assert_eq!(rows.len(), 28);
    let input = model
        .pre_process(RawInput::File(&crate::helpers::sample(7)))
        .expect("a sample");
    let expected = model.explain(&input, 7, 50).expect("explains");
    let served: Vec<f64> = rows.iter().flat_map(json_numbers).collect();
    assert_eq!(served.len(), 784);
    for (got, want) in served.iter().zip(&expected.attributions) {
        assert!((got - f64::from(*want)).abs() < 1e-6);
    }

    let body: serde_json::Value = app
        .post_form("/model/explain", form(Some("1"), Some("15")))
        .json()
        .expect("JSON");
    assert_eq!(
        (body["prediction"].as_u64(), body["target"].as_u64()),
        (Some(7), Some(1))
    );

    for (path, accept) in [
        ("/model/explain", "image/png"),
        ("/model/explain?format=png", "*/*"),
    ] {
        let response = app
            .client
            .post(app.url(path))
            .header("Accept", accept)
            .multipart(form(None, None))
            .send()
            .expect("POST");
        let picture = png_body(response);
        assert_eq!((picture.width(), picture.height()), (280, 280));
    }

    for (target, steps, says) in [
        (
            Some("10"),
            None,
            "target must be a class from 0 to 9, got 10",
        ),
        (Some("seven"), None, "target must be a whole number"),
        (None, Some("0"), "steps must be from 1 to 512, got 0"),
        (None, Some("100000"), "steps"),
    ] {
        let message =
            crate::helpers::max_error(app.post_form("/model/explain", form(target, steps)), 400);
        assert!(message.contains(says), "{message}");
    }
    app.assert_still_serving();
}

/// TorchServe's frontend sends `/explanations/{model}[/{version}]` to the model whatever the
/// method (`InferenceRequestHandler.handleRequest`: the `explanations` case calls
/// `handlePredictions` as the `predictions` case does), so its example's `curl
/// http://127.0.0.1:8080/explanations/mnist -T 0.png`, a PUT, is answered as a POST.
#[test]
fn explanations_take_a_put_as_curl_t_sends_it() {
    let app = spawn_app();
    let post = ok_json(app.torchserve_explain("mnist", sample(0)));
    let (shape, attributions) = nested_numbers(&post);
    assert_eq!(shape, [1, 28, 28]);
    let model = upstream_model();
    let input = model
        .pre_process(RawInput::File(&sample(0)))
        .expect("a sample");
    let expected = model.explain(&input, 0, 15).expect("explains");
    assert!(same_attributions(&attributions, &expected.attributions));
    for path in ["/explanations/mnist", "/explanations/mnist/1"] {
        assert_eq!(ok_json(app.put_bytes(path, sample(0))), post, "PUT {path}");
    }
    assert_eq!(
        ok_json(app.post_bytes("/explanations/mnist/1", sample(0))),
        post
    );
    let picture = png_body(
        app.client
            .put(app.url("/explanations/mnist?format=png"))
            .body(sample(0))
            .send()
            .expect("PUT"),
    );
    assert_eq!((picture.width(), picture.height()), (280, 280));

    for (path, body, status, kind) in [
        (
            "/explanations/mnist",
            b"not an image".to_vec(),
            400,
            "BadRequestException",
        ),
        (
            "/explanations/mnist",
            Vec::new(),
            400,
            "BadRequestException",
        ),
        (
            "/explanations/mnist/2",
            sample(0),
            404,
            "ModelNotFoundException",
        ),
        (
            "/explanations/resnet",
            sample(0),
            404,
            "ModelNotFoundException",
        ),
    ] {
        let message = torchserve_error(app.put_bytes(path, body), status, kind);
        assert!(!message.is_empty(), "PUT {path}");
    }
    app.assert_still_serving();
}
