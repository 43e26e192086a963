//! `/model/metadata`, `/model/labels`, `/model/predict` over real HTTP, and their errors.

use std::sync::atomic::{AtomicUsize, Ordering};

use max_mnist_core::model::softmax;
use reqwest::blocking::multipart::{Form, Part};
use serde_json::{json, Value};

use crate::exactness::SAMPLE_LOGITS;
use crate::helpers::{
    image_form, max_error, mnist_test_set, png_of, reference, reference_predictions, sample,
    settings, spawn_app,
};

#[test]
fn metadata_comes_from_the_config() {
    let app = spawn_app();
    let response = app.get("/model/metadata");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().expect("JSON");
    let metadata = settings().metadata;
    assert_eq!(
        body,
        json!({
            "id": metadata.id,
            "name": metadata.name,
            "description": metadata.description,
            "type": "Image Classification",
            "source": metadata.source,
            "license": metadata.license,
        })
    );
}

#[test]
fn labels_are_the_ten_digits() {
    let app = spawn_app();
    let body: Value = app.get("/model/labels").json().expect("JSON");
    assert_eq!(body["count"], 10);
    let labels = body["labels"].as_array().expect("labels");
    for (digit, label) in labels.iter().enumerate() {
        assert_eq!(
            label,
            &json!({"id": digit.to_string(), "name": digit.to_string()})
        );
    }
    assert_eq!(labels.len(), 10);
}

#[test]
fn every_sample_is_classified_with_pytorchs_probabilities() {
    let app = spawn_app();
    for digit in 0..10u8 {
        let form = image_form("file", sample(digit)).text("top_k", "10");
        let response = app.post_form("/model/predict", form);
        assert_eq!(response.status(), 200);
        let body: Value = response.json().expect("JSON");
        assert_eq!(body["status"], "ok");
        let predictions = body["predictions"].as_array().expect("predictions");
        assert_eq!(predictions.len(), 10);
        assert_eq!(predictions[0]["prediction"], digit);
        let expected = softmax(&SAMPLE_LOGITS[digit as usize]);
        let mut previous = f64::INFINITY;
        for prediction in predictions {
            let class = prediction["prediction"].as_u64().expect("digit") as usize;
            let probability = prediction["probability"].as_f64().expect("probability");
            assert!(
                (probability - f64::from(expected[class])).abs() < 1e-5,
                "digit {digit}, class {class}"
            );
            assert!(probability <= previous, "sorted by probability");
            previous = probability;
        }
    }
}

#[test]
fn the_image_field_and_top_k_work_and_top_1_is_the_default() {
    let app = spawn_app();
    let body: Value = app
        .post_form("/model/predict", image_form("image", sample(7)))
        .json()
        .expect("JSON");
    assert_eq!(body["predictions"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["predictions"][0]["prediction"], 7);

    let body: Value = app
        .post_form(
            "/model/predict",
            image_form("file", sample(3)).text("top_k", "3"),
        )
        .json()
        .expect("JSON");
    let digits: Vec<u64> = body["predictions"]
        .as_array()
        .expect("list")
        .iter()
        .map(|p| p["prediction"].as_u64().expect("digit"))
        .collect();
    assert_eq!(digits.len(), 3);
    assert_eq!(digits[0], 3);
}

#[test]
fn options_come_from_the_query_string_or_the_form_but_not_both_differently() {
    let app = spawn_app();
    let count = |response: reqwest::blocking::Response| {
        let body: Value = response.json().expect("JSON");
        body["predictions"].as_array().map_or(0, Vec::len)
    };
    let query = app.post_form("/model/predict?top_k=3", image_form("file", sample(4)));
    assert_eq!(
        count(query),
        3,
        "curl -F file=@4.png '…/model/predict?top_k=3'"
    );
    let both = app.post_form(
        "/model/predict?top_k=2",
        image_form("file", sample(4)).text("top_k", "2"),
    );
    assert_eq!(count(both), 2, "the same value both ways");
    let message = max_error(
        app.post_form(
            "/model/predict?top_k=2",
            image_form("file", sample(4)).text("top_k", "5"),
        ),
        400,
    );
    assert!(
        message.contains("`2` in the query string and `5` in the form"),
        "{message}"
    );
    let explained: Value = app
        .explain(sample(4), "?steps=15&target=9")
        .json()
        .expect("JSON");
    assert_eq!(explained["target"], 9);
    let direct = crate::helpers::upstream_model();
    let input = max_mnist_core::Model::pre_process(
        direct.as_ref(),
        max_mnist_core::RawInput::File(&sample(4)),
    )
    .expect("a sample");
    let fifteen = max_mnist_core::Model::explain(direct.as_ref(), &input, 9, 15).expect("explains");
    let delta = explained["convergence_delta"].as_f64().expect("delta");
    assert!(
        (delta - f64::from(fifteen.convergence_delta)).abs() < 1e-6,
        "steps=15 from the query: {delta} vs {}",
        fifteen.convergence_delta
    );
    let message = max_error(app.explain(sample(4), "?format=gif"), 400);
    assert!(message.contains("format"), "{message}");
    app.assert_still_serving();
}

/// One rule for query strings, the management API's: a parameter the route does not take is a 400
/// naming the ones it does (a misspelt `topk` would otherwise give the default silently).
#[test]
fn a_query_parameter_the_route_does_not_take_is_a_400_naming_the_ones_it_does() {
    let app = spawn_app();
    let message = max_error(
        app.post_form("/model/predict?topk=3", image_form("file", sample(4))),
        400,
    );
    assert!(
        message.contains("unknown parameter `topk`: this route takes top_k"),
        "{message}"
    );
    let message = max_error(app.explain(sample(4), "?step=15"), 400);
    assert!(
        message.contains("unknown parameter `step`: this route takes target, steps, format"),
        "{message}"
    );
    let message = max_error(app.get("/demo?modle=mnist"), 400);
    assert!(
        message.contains("unknown parameter `modle`: this route takes model"),
        "{message}"
    );
    let message = crate::helpers::torchserve_error(
        app.post_bytes("/explanations/mnist?fromat=png", sample(4)),
        400,
        "BadRequestException",
    );
    assert!(
        message.contains("unknown parameter `fromat`: this route takes format"),
        "{message}"
    );
    // The first of a repeated parameter counts, as Flask's and TorchServe's parsers take it.
    let first = app.post_form(
        "/model/predict?top_k=2&top_k=5",
        image_form("file", sample(4)),
    );
    let body: Value = first.json().expect("JSON");
    assert_eq!(body["predictions"].as_array().map(Vec::len), Some(2));
    app.assert_still_serving();
}

#[test]
fn other_formats_of_a_sample_are_read() {
    let app = spawn_app();
    let gray = image::load_from_memory(&sample(2)).expect("decode the sample");
    let rgba = image::DynamicImage::ImageRgba8(gray.to_rgba8());
    for (format, image) in [
        (image::ImageFormat::Bmp, &gray),
        (image::ImageFormat::Tiff, &gray),
        (image::ImageFormat::WebP, &gray),
        (image::ImageFormat::Gif, &rgba),
    ] {
        let mut bytes = Vec::new();
        image
            .write_to(&mut std::io::Cursor::new(&mut bytes), format)
            .expect("encode");
        let body: Value = app.predict(bytes).json().expect("JSON");
        assert_eq!(body["predictions"][0]["prediction"], 2, "{format:?}");
    }
    let mut rgb_png = Vec::new();
    image::DynamicImage::ImageRgb8(gray.to_rgb8())
        .write_to(
            &mut std::io::Cursor::new(&mut rgb_png),
            image::ImageFormat::Png,
        )
        .expect("encode");
    let body: Value = app.predict(rgb_png).json().expect("JSON");
    assert_eq!(body["predictions"][0]["prediction"], 2, "RGB PNG");
}

#[test]
fn a_missing_file_field_is_a_400_that_names_the_field() {
    let app = spawn_app();
    let form = Form::new()
        .text("top_k", "1")
        .part("picture", Part::bytes(sample(1)).file_name("1.png"));
    let message = max_error(app.post_form("/model/predict", form), 400);
    assert!(message.contains("`file`"), "{message}");
    app.assert_still_serving();
}

#[test]
fn a_file_that_is_not_an_image_is_a_400() {
    let app = spawn_app();
    let message = max_error(app.predict(b"just some text, not a picture".to_vec()), 400);
    assert!(
        message.contains("not an image") && message.contains("PNG"),
        "{message}"
    );
    let message = max_error(app.predict(Vec::new()), 400);
    assert!(message.contains("empty"), "{message}");
    let truncated = sample(5)[..60].to_vec();
    let message = max_error(app.predict(truncated), 400);
    assert!(message.contains("could not be decoded"), "{message}");
    app.assert_still_serving();
}

#[test]
fn a_bad_top_k_is_a_400() {
    let app = spawn_app();
    for top_k in ["0", "11", "seven"] {
        let message = max_error(
            app.post_form(
                "/model/predict",
                image_form("file", sample(1)).text("top_k", top_k),
            ),
            400,
        );
        assert!(
            message.contains("top_k") && message.contains(top_k),
            "{message}"
        );
    }
    app.assert_still_serving();
}

#[test]
fn a_body_that_is_not_multipart_is_a_415() {
    let app = spawn_app();
    let url = format!("{}/model/predict", app.address);
    let json_body = app
        .client
        .post(&url)
        .json(&json!({"data": "aGVsbG8="}))
        .send()
        .expect("POST");
    let message = max_error(json_body, 415);
    assert!(
        message.contains("multipart/form-data") && message.contains("curl -F file=@"),
        "{message}"
    );
    let raw_png = app
        .client
        .post(&url)
        .header("content-type", "image/png")
        .body(sample(4))
        .send()
        .expect("POST");
    max_error(raw_png, 415);
    let no_type = app.client.post(&url).body(sample(4)).send().expect("POST");
    max_error(no_type, 415);
    app.assert_still_serving();
}

#[test]
fn an_oversize_upload_is_a_413_naming_the_setting() {
    let app = spawn_app();
    let limit = settings().limits.max_body_bytes;
    let message = max_error(app.predict(vec![0x89; limit + 1024]), 413);
    assert!(
        message.contains("limits.max_body_bytes") && message.contains(&limit.to_string()),
        "{message}"
    );
    app.assert_still_serving();
}

#[test]
fn an_image_with_too_many_pixels_is_a_413() {
    let app = spawn_app();
    // A valid 8000×6000 PNG: 48 Mpx, over the 40 Mpx default, yet only a few kilobytes.
    let big = image::GrayImage::new(8000, 6000);
    let mut png = Vec::new();
    big.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("encode");
    let message = max_error(app.predict(png), 413);
    assert!(
        message.contains("8000×6000") && message.contains("limits.max_image_pixels"),
        "{message}"
    );
    app.assert_still_serving();
}

#[test]
#[ignore = "needs MNIST_DATA_DIR (.ci/run sets it and runs ignored tests)"]
fn all_ten_thousand_test_images_over_http_match_pytorch() {
    let (test_set, reference) = (mnist_test_set(), reference("upstream-t10k.json"));
    let expected = reference_predictions(&reference);
    let pngs: Vec<Vec<u8>> = test_set.images.iter().map(png_of).collect();
    let app = spawn_app();
    let next = AtomicUsize::new(0);
    let mismatches = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(png) = pngs.get(index) else { break };
                let body: Value = app.predict(png.clone()).json().expect("JSON");
                if body["predictions"][0]["prediction"].as_u64() != Some(expected[index]) {
                    mismatches.fetch_add(1, Ordering::Relaxed);
                    eprintln!("image {index}: {body}, PyTorch says {}", expected[index]);
                }
            });
        }
    });
    assert_eq!(mismatches.into_inner(), 0);
}
