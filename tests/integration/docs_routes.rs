//! `GET /`, Swagger UI and the OpenAPI document.

use serde_json::Value;

use crate::helpers::{settings, spawn_app};

#[test]
fn a_browser_is_sent_to_swagger_ui_by_a_relative_redirect() {
    let app = spawn_app();
    let response = app
        .client
        .get(app.url("/"))
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .expect("GET /");
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["location"], "swagger-ui/");

    let page = app.get("/swagger-ui/");
    assert_eq!(page.status(), 200);
    assert!(page.text().expect("HTML").contains("swagger-ui"));
    // Served from the binary (no CDN), loading the document by a relative URL.
    let initializer = app
        .get("/swagger-ui/swagger-initializer.js")
        .text()
        .expect("JS");
    assert!(
        initializer.contains(r#""url": "../swagger.json""#),
        "{initializer}"
    );
    assert_eq!(app.get("/swagger-ui/swagger-ui-bundle.js").status(), 200);
    assert_eq!(app.get("/swagger-ui").status(), 302);
}

#[test]
fn an_api_client_gets_kserves_liveness_answer_at_the_root() {
    let app = spawn_app();
    for accept in [None, Some("application/json"), Some("*/*")] {
        let mut request = app.client.get(app.url("/"));
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        let response = request.send().expect("GET /");
        assert_eq!(response.status(), 200, "{accept:?}");
        assert_eq!(
            response.json::<Value>().expect("JSON"),
            serde_json::json!({"status": "alive"})
        );
    }
}

#[test]
fn the_openapi_document_describes_every_route() {
    let app = spawn_app();
    let document: Value = app.get("/swagger.json").json().expect("JSON");
    assert_eq!(
        app.get("/openapi.json").json::<Value>().expect("JSON"),
        document
    );

    let api = settings().api;
    assert_eq!(document["info"]["title"], api.title);
    assert_eq!(document["info"]["description"], api.description);
    assert_eq!(document["info"]["version"], api.version);

    let paths = document["paths"].as_object().expect("paths");
    let mut documented: Vec<&str> = paths.keys().map(String::as_str).collect();
    documented.sort_unstable();
    assert_eq!(
        documented,
        [
            "/",
            "/demo",
            "/explanations/{model}",
            "/explanations/{model}/{version}",
            "/metrics",
            "/model/explain",
            "/model/labels",
            "/model/metadata",
            "/model/predict",
            "/models",
            "/models/{model}",
            "/openapi.json",
            "/ping",
            "/predictions/{model}",
            "/predictions/{model}/{version}",
            "/swagger.json",
            "/v1/models",
            "/v1/models/{model}",
            "/v1/models/{model}:explain",
            "/v1/models/{model}:predict",
            "/v2",
            "/v2/health/live",
            "/v2/health/ready",
            "/v2/models/{model}",
            "/v2/models/{model}/explain",
            "/v2/models/{model}/infer",
            "/v2/models/{model}/ready"
        ]
    );
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("operations") {
            assert!(
                operation["responses"]["200"].is_object(),
                "{method} {path} documents its 200"
            );
            assert!(operation["tags"].is_array(), "{method} {path} has a tag");
        }
    }

    let predict = &document["paths"]["/model/predict"]["post"];
    let schema = resolve(
        &document,
        &predict["requestBody"]["content"]["multipart/form-data"]["schema"],
    );
    // A string of format binary is what makes Swagger UI show a file picker.
    assert_eq!(schema["properties"]["file"]["type"], "string");
    assert_eq!(schema["properties"]["file"]["format"], "binary");
    for status in ["200", "400", "413", "415"] {
        assert!(
            predict["responses"][status]["description"].is_string(),
            "predict documents {status}"
        );
    }
    let error = resolve(
        &document,
        &predict["responses"]["400"]["content"]["application/json"]["schema"],
    );
    assert!(error["properties"]["message"].is_object());
}

fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.trim_start_matches("#/components/schemas/");
            &document["components"]["schemas"][name]
        }
        None => schema,
    }
}

#[test]
fn the_demo_page_is_self_contained_and_calls_the_public_api() {
    let app = spawn_app();
    let response = app.get("/demo");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    let page = response.text().expect("HTML");
    assert!(page.contains("<canvas"), "no drawing area");
    // No CDN: nothing is loaded from another origin, and the API is called by relative URLs.
    for external in ["http://", "https://", "src=\"//", "href=\"//"] {
        assert!(!page.contains(external), "the page refers to {external}");
    }
    assert!(page.contains(r#"fetch("model/predict""#));
    assert!(page.contains(r#""model/explain?format=png""#));
    // Swagger UI's description links to it.
    let document: Value = app.get("/openapi.json").json().expect("JSON");
    let description = document["info"]["description"].as_str().unwrap_or_default();
    assert!(description.contains("(../demo)"), "{description}");
}
