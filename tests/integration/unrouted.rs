//! The inference listener's answers to a path no route has (404) and to a method a route does not
//! take (405): each with a body in the error shape of the protocol the path belongs to, as
//! TorchServe answers both (`InvalidRequestHandler.handleRequest` throws
//! `ResourceNotFoundException`; `HttpRequestHandler.channelRead0` sends it as 404 and
//! `MethodNotAllowedException` as 405, the exception's class name as `type`).

use reqwest::Method;
use serde_json::Value;

use crate::helpers::{kserve_error, max_error, spawn_app, torchserve_error, TestApp};

fn call(app: &TestApp, method: &str, path: &str) -> reqwest::blocking::Response {
    let method = Method::from_bytes(method.as_bytes()).expect("a method");
    app.client
        .request(method, app.url(path))
        .send()
        .expect("a request")
}

fn allow(response: &reqwest::blocking::Response) -> Option<String> {
    response
        .headers()
        .get("allow")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

#[test]
fn an_unknown_path_is_a_404_in_the_shape_of_the_protocol_it_belongs_to() {
    let app = spawn_app();
    for path in [
        "/v1/nothing",
        "/v2/models/mnist/nothing",
        "/v2/nothing/at/all",
    ] {
        let message = kserve_error(call(&app, "GET", path), 404);
        assert!(message.contains(path), "{message}");
        assert!(message.contains("/openapi.json"), "{message}");
    }
    for path in ["/model/nothing", "/model/"] {
        let message = max_error(call(&app, "POST", path), 404);
        assert!(message.contains("/openapi.json"), "{message}");
    }
    for path in [
        "/nothing",
        "/predictions",
        "/explanations/mnist/1.0/extra",
        "/pingx",
    ] {
        let message = torchserve_error(call(&app, "GET", path), 404, "ResourceNotFoundException");
        assert!(message.starts_with("no route GET"), "{message}");
    }
    // A long path is cut short in the message, which only needs it recognised.
    let long = format!("/{}", "a".repeat(5000));
    let message = torchserve_error(call(&app, "GET", &long), 404, "ResourceNotFoundException");
    assert!(message.len() < 400, "{message}");
    app.assert_still_serving();
}

#[test]
fn a_model_not_served_keeps_its_handlers_answer() {
    let app = spawn_app();
    let response = call(&app, "POST", "/predictions/nobody");
    torchserve_error(response, 404, "ModelNotFoundException");
}

#[test]
fn a_method_a_route_does_not_take_is_a_405_naming_the_ones_it_does() {
    let app = spawn_app();
    // TorchServe's shape off the other protocols' prefixes.
    for (method, path, allowed) in [
        ("TRACE", "/ping", "GET"),
        ("POST", "/metrics", "GET"),
        ("DELETE", "/predictions/mnist", "POST, PUT"),
        ("GET", "/predictions/mnist/1.0", "POST, PUT"),
        ("PUT", "/models", "GET"),
        ("TRACE", "/swagger.json", "GET"),
        ("POST", "/", "GET"),
    ] {
        let response = call(&app, method, path);
        assert_eq!(
            allow(&response).as_deref(),
            Some(allowed),
            "{method} {path}"
        );
        let message = torchserve_error(response, 405, "MethodNotAllowedException");
        assert!(
            message.contains(&format!("does not take {method}: use {allowed}")),
            "{message}"
        );
    }
    for (method, path, allowed) in [
        ("GET", "/model/predict", "POST"),
        ("TRACE", "/model/metadata", "GET"),
        ("PUT", "/model/explain", "POST"),
    ] {
        let response = call(&app, method, path);
        assert_eq!(
            allow(&response).as_deref(),
            Some(allowed),
            "{method} {path}"
        );
        let message = max_error(response, 405);
        assert!(message.contains(&format!("use {allowed}")), "{message}");
    }
    for (method, path, allowed) in [
        ("GET", "/v2/models/mnist/infer", "POST"),
        ("TRACE", "/v2/health/ready", "GET"),
        ("DELETE", "/v1/models/mnist", "GET"),
    ] {
        let response = call(&app, method, path);
        assert_eq!(
            allow(&response).as_deref(),
            Some(allowed),
            "{method} {path}"
        );
        let message = kserve_error(response, 405);
        assert!(message.contains(&format!("use {allowed}")), "{message}");
    }
    app.assert_still_serving();
}

#[test]
fn a_guarded_route_turning_a_method_away_is_a_405_too() {
    // Swagger UI's files are served by a route guarded to GET: actix falls through to the default
    // service, which still knows the path.
    let app = spawn_app();
    assert_eq!(app.get("/swagger-ui/index.html").status(), 200);
    let response = call(&app, "POST", "/swagger-ui/index.html");
    let message = torchserve_error(response, 405, "MethodNotAllowedException");
    assert!(message.contains("/openapi.json"), "{message}");
}

#[test]
fn the_answers_say_json_and_head_requests_get_no_body() {
    let app = spawn_app();
    let response = call(&app, "GET", "/nothing");
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().expect("JSON");
    assert_eq!(body["code"], 404);
    let response = call(&app, "HEAD", "/nothing");
    assert_eq!(response.status(), 404);
    assert!(response.bytes().expect("body").is_empty());
}
