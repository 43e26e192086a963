//! Operations: Prometheus metrics and CORS.

use serde_json::json;

use crate::helpers::{
    image_form, sample, service_settings, spawn_app, spawn_app_with, ServerProcess,
};

/// The value of the sample line that starts with `series`.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series))
        .and_then(|value| value.trim().parse().ok())
}

#[test]
fn metrics_count_requests_by_route_and_status_and_batches_by_size() {
    let app = spawn_app();
    for digit in 0..3 {
        assert_eq!(app.predict(sample(digit)).status(), 200);
    }
    assert_eq!(app.predict(b"not an image".to_vec()).status(), 400);
    let instances: Vec<_> = (0..64).map(|_| json!({"data": "iVBORw0KGgo="})).collect();
    // 64 truncated PNGs: refused, but only after the batch was formed.
    let _ = app.v1_predict("mnist", &json!({ "instances": instances }));
    let _ = app.get("/v2/models/resnet");
    let _ = app.get("/no/such/route");

    let response = app.get("/metrics");
    assert_eq!(response.status(), 200);
    assert!(response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain")));
    let text = response.text().expect("text");
    let requests = |route: &str, method: &str, status: u16, model: &str| {
        metric(
            &text,
            &format!("max_mnist_requests_total{{method=\"{method}\",model=\"{model}\",route=\"{route}\",status=\"{status}\"}}"),
        )
    };
    assert_eq!(
        requests("/model/predict", "POST", 200, "mnist"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(requests("/model/predict", "POST", 400, "mnist"), Some(1.0));
    assert_eq!(
        requests("/v1/models/{model}:predict", "POST", 400, "mnist"),
        Some(1.0)
    );
    assert_eq!(
        requests("/v2/models/{model}", "GET", 404, ""),
        Some(1.0),
        "a model not served is not a label"
    );
    assert_eq!(requests("unmatched", "GET", 404, ""), Some(1.0));
    assert_eq!(
        metric(
            &text,
            "max_mnist_request_duration_seconds_count{model=\"mnist\",route=\"/model/predict\"}"
        ),
        Some(4.0)
    );
    assert_eq!(
        metric(&text, "max_mnist_batch_size_count{model=\"mnist\"}"),
        Some(5.0)
    );
    for (le, count) in [("1", 4.0), ("32", 4.0), ("64", 5.0)] {
        assert_eq!(
            metric(
                &text,
                &format!("max_mnist_batch_size_bucket{{model=\"mnist\",le=\"{le}\"}}")
            ),
            Some(count),
            "le {le}"
        );
    }
    assert_eq!(
        metric(
            &text,
            "max_mnist_model_info{name=\"mnist\",network=\"MyConvNet\",version=\"1\"}"
        ),
        Some(1.0)
    );
}

#[test]
fn cors_is_off_by_default_and_on_for_any_origin_when_enabled() {
    let origin = "https://digits.example";
    let allow_origin = |app: &crate::helpers::TestApp| {
        app.client
            .get(app.url("/model/metadata"))
            .header("Origin", origin)
            .send()
            .expect("GET")
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap_or_default().to_owned())
    };
    assert_eq!(allow_origin(&spawn_app()), None);

    let mut service = service_settings();
    service.cors.enabled = true;
    let app = spawn_app_with(service);
    assert!(allow_origin(&app).is_some_and(|v| v == origin || v == "*"));
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/model/predict"))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .send()
        .expect("OPTIONS");
    assert!(preflight.status().is_success());
    assert!(preflight
        .headers()
        .contains_key("access-control-allow-methods"));
    let response = app
        .client
        .post(app.url("/model/predict"))
        .header("Origin", origin)
        .multipart(image_form("file", sample(7)))
        .send()
        .expect("POST");
    assert!(response
        .headers()
        .contains_key("access-control-allow-origin"));
}

#[test]
fn cors_origins_from_the_command_line_limit_who_may_call() {
    let server = ServerProcess::start(&[
        "--cors-enable",
        "true",
        "--cors-origins",
        "https://a.example, https://b.example",
    ]);
    let client = reqwest::blocking::Client::new();
    let allowed = |origin: &str| {
        client
            .get(format!("{}/ping", server.url))
            .header("Origin", origin)
            .send()
            .expect("GET")
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(
        allowed("https://a.example").as_deref(),
        Some("https://a.example")
    );
    assert_eq!(
        allowed("https://b.example").as_deref(),
        Some("https://b.example")
    );
    assert_eq!(allowed("https://evil.example"), None);
}
