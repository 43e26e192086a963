//! The OpenAPI document tells the truth: each fixed route's real answer validates against the
//! schema the document gives it, raw bodies are files (Swagger UI's file picker), and the path
//! parameters are the models served.

use reqwest::blocking::multipart::{Form, Part};
use serde_json::{json, Value};

use crate::helpers::{
    image_form, ok_json, sample, sample_base64, spawn_app, titanic_dir, titanic_first_app, TestApp,
};

fn document(app: &TestApp) -> Value {
    ok_json(app.get("/openapi.json"))
}

/// A `$ref` to a component, followed.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.trim_start_matches("#/components/schemas/");
            let target = &document["components"]["schemas"][name];
            assert!(target.is_object(), "{reference} is not in the document");
            resolve(document, target)
        }
        None => schema,
    }
}

/// Where `value` breaks `schema` (the keywords utoipa writes: type, required, properties,
/// additionalProperties, items, oneOf, enum, minimum, maximum), or `None`.
fn violation(document: &Value, schema: &Value, value: &Value, at: &str) -> Option<String> {
    let schema = resolve(document, schema);
    if let Some(choices) = schema["oneOf"].as_array() {
        let matching = choices
            .iter()
            .filter(|choice| violation(document, choice, value, at).is_none())
            .count();
        return (matching != 1).then(|| format!("{at}: {matching} of oneOf match {value}"));
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let type_of = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let typed = types.is_empty()
        || types.contains(&type_of)
        || (type_of == "integer" && types.contains(&"number"));
    if !typed {
        return Some(format!("{at}: {value} is not {types:?}"));
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            return Some(format!("{at}: {value} is not one of {allowed:?}"));
        }
    }
    if let Some(number) = value.as_f64() {
        if schema["minimum"].as_f64().is_some_and(|min| number < min)
            || schema["maximum"].as_f64().is_some_and(|max| number > max)
        {
            return Some(format!("{at}: {number} is out of bounds"));
        }
    }
    if let Value::Object(object) = value {
        for required in schema["required"].as_array().into_iter().flatten() {
            let name = required.as_str().unwrap_or_default();
            if !object.contains_key(name) {
                return Some(format!("{at}: `{name}` is required"));
            }
        }
        for (name, field) in object {
            let at = format!("{at}.{name}");
            let problem = match (&schema["properties"][name], &schema["additionalProperties"]) {
                (Value::Object(_), _) => {
                    violation(document, &schema["properties"][name], field, &at)
                }
                (_, Value::Bool(false)) => Some(format!("{at} is not a documented property")),
                (_, Value::Object(_)) => {
                    violation(document, &schema["additionalProperties"], field, &at)
                }
                _ if schema["properties"].is_object() => {
                    Some(format!("{at} is not a documented property"))
                }
                _ => None,
            };
            if problem.is_some() {
                return problem;
            }
        }
    }
    if let Value::Array(items) = value {
        if schema["items"].is_object() {
            return items.iter().enumerate().find_map(|(index, item)| {
                violation(document, &schema["items"], item, &format!("{at}[{index}]"))
            });
        }
    }
    None
}

/// The schema of `method path`'s `status` answer in `content_type`.
fn response_schema<'a>(
    document: &'a Value,
    method: &str,
    path: &str,
    status: &str,
    content_type: &str,
) -> &'a Value {
    let schema =
        &document["paths"][path][method]["responses"][status]["content"][content_type]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path} documents no {status} {content_type}"
    );
    schema
}

fn assert_answer_documented(document: &Value, method: &str, path: &str, answer: &Value) {
    let schema = response_schema(document, method, path, "200", "application/json");
    if let Some(problem) = violation(document, schema, answer, "answer") {
        panic!("{method} {path}: {problem}\nschema: {schema}");
    }
}

#[test]
fn the_schema_checker_finds_what_it_is_shown() {
    let document = json!({"components": {"schemas": {"A": {
        "type": "object", "required": ["n"], "properties": {"n": {"type": "integer", "minimum": 0}}}}}});
    let a = json!({"$ref": "#/components/schemas/A"});
    assert!(violation(&document, &a, &json!({"n": 3}), "a").is_none());
    assert!(violation(&document, &a, &json!({"n": -1}), "a").is_some());
    assert!(violation(&document, &a, &json!({"n": 1, "extra": 2}), "a").is_some());
    assert!(violation(&document, &a, &json!({}), "a").is_some());
    assert!(violation(&document, &a, &json!([{"n": 1}]), "a").is_some());
    let either =
        json!({"oneOf": [{"type": "integer"}, {"type": "array", "items": {"type": "string"}}]});
    assert!(violation(&document, &either, &json!(7), "e").is_none());
    assert!(violation(&document, &either, &json!(["x"]), "e").is_none());
    assert!(violation(&document, &either, &json!([1]), "e").is_some());
}

#[test]
fn the_max_routes_answers_match_their_schemas() {
    let app = spawn_app();
    let document = document(&app);

    let metadata = ok_json(app.get("/model/metadata"));
    assert_answer_documented(&document, "get", "/model/metadata", &metadata);
    // MAX's metadata and KServe v2's are two schemas with names of their own.
    let schemas = &document["components"]["schemas"];
    assert!(schemas["MaxModelMetadata"]["properties"]["license"].is_object());
    assert!(schemas["V2ModelMetadata"]["properties"]["versions"].is_object());
    assert!(schemas["ModelMetadata"].is_null());

    assert_answer_documented(
        &document,
        "get",
        "/model/labels",
        &ok_json(app.get("/model/labels")),
    );

    for top_k in ["1", "3"] {
        let form = image_form("file", sample(7)).text("top_k", top_k);
        let answer = ok_json(app.post_form("/model/predict", form));
        assert_answer_documented(&document, "post", "/model/predict", &answer);
    }
    let items = resolve(
        &document,
        &resolve(
            &document,
            response_schema(
                &document,
                "post",
                "/model/predict",
                "200",
                "application/json",
            ),
        )["properties"]["predictions"]["items"],
    );
    assert_eq!(items["type"], "object", "{items}");

    let answer = ok_json(app.explain(sample(7), "?steps=8"));
    assert!(answer["attributions"].is_array());
    assert_answer_documented(&document, "post", "/model/explain", &answer);
    // The query options are documented in the query (not as required path parameters).
    let parameters = document["paths"]["/model/explain"]["post"]["parameters"]
        .as_array()
        .expect("parameters");
    for parameter in parameters {
        assert_eq!(parameter["in"], "query", "{parameter}");
        assert_eq!(parameter["required"], false, "{parameter}");
    }
}

#[test]
fn the_protocol_routes_answers_match_their_schemas() {
    let app = spawn_app();
    let document = document(&app);
    let image = json!({"instances": [{"data": sample_base64(3)}]});
    for (method, path, answer) in [
        ("get", "/v1/models", ok_json(app.get("/v1/models"))),
        (
            "get",
            "/v1/models/{model}",
            ok_json(app.get("/v1/models/mnist")),
        ),
        (
            "post",
            "/v1/models/{model}:predict",
            ok_json(app.v1_predict("mnist", &image)),
        ),
        (
            "post",
            "/v1/models/{model}:explain",
            ok_json(app.v1_explain("mnist", &image)),
        ),
        (
            "get",
            "/v2/models/{model}",
            ok_json(app.get("/v2/models/mnist")),
        ),
        (
            "get",
            "/v2/models/{model}/ready",
            ok_json(app.get("/v2/models/mnist/ready")),
        ),
        ("get", "/v2", ok_json(app.get("/v2"))),
        (
            "post",
            "/predictions/{model}",
            ok_json(app.post_bytes("/predictions/mnist", sample(2))),
        ),
        (
            "put",
            "/predictions/{model}",
            ok_json(app.torchserve_predict("mnist", sample(2))),
        ),
        (
            "post",
            "/explanations/{model}",
            ok_json(app.torchserve_explain("mnist", sample(2))),
        ),
        ("get", "/models", ok_json(app.get("/models"))),
        ("get", "/ping", ok_json(app.get("/ping"))),
    ] {
        assert_answer_documented(&document, method, path, &answer);
    }
}

#[test]
fn raw_bodies_are_files_with_multipart_and_json_alternatives() {
    let app = spawn_app();
    let document = document(&app);
    let mut ids = Vec::new();
    for (method, path) in [
        ("post", "/predictions/{model}"),
        ("put", "/predictions/{model}"),
        ("post", "/predictions/{model}/{version}"),
        ("put", "/predictions/{model}/{version}"),
        ("post", "/explanations/{model}"),
    ] {
        let operation = &document["paths"][path][method];
        let content = &operation["requestBody"]["content"];
        // `format: binary` is what makes Swagger UI show a file picker.
        let raw = resolve(&document, &content["application/octet-stream"]["schema"]);
        assert_eq!(raw["type"], "string", "{method} {path}: {raw}");
        assert_eq!(raw["format"], "binary", "{method} {path}: {raw}");
        let form = resolve(&document, &content["multipart/form-data"]["schema"]);
        assert_eq!(form["properties"]["data"]["format"], "binary", "{form}");
        assert_eq!(form["required"], json!(["data"]));
        let json_body = resolve(&document, &content["application/json"]["schema"]);
        assert_eq!(json_body["properties"]["data"]["type"], "string");
        assert!(content["text/csv"].is_object());
        ids.push(operation["operationId"].as_str().expect("an id").to_owned());
    }
    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), ids.len(), "operation ids repeat: {ids:?}");

    // The documented JSON example is a real digit: it classifies as one.
    let example =
        &document["components"]["schemas"]["Base64Image"]["properties"]["data"]["example"];
    let answer = ok_json(app.post_json("/predictions/mnist", &json!({"data": example})));
    assert_eq!(answer, json!(7));
    let v1_example =
        &document["components"]["schemas"]["PredictRequest"]["properties"]["instances"]["example"];
    let answer = ok_json(app.v1_predict("mnist", &json!({"instances": v1_example})));
    assert_eq!(answer["predictions"], json!([7]));
    // And the file picker's request, multipart with a file, is answered.
    let form = Form::new().part("data", Part::bytes(sample(4)).file_name("4.png"));
    let answer = ok_json(app.post_form("/predictions/mnist", form));
    assert_eq!(answer, json!(4));
}

#[test]
#[ignore = "needs MNIST_TITANIC_DIR (.ci/run sets it and runs ignored tests)"]
fn the_model_and_version_parameters_are_the_ones_served_and_tabular_answers_fit_too() {
    let dir = titanic_dir();
    // Titanic first, so that the MAX routes answer with it.
    let app = titanic_first_app(None);
    let document = document(&app);
    let parameters = document["paths"]["/predictions/{model}/{version}"]["post"]["parameters"]
        .as_array()
        .expect("parameters");
    let named = |name: &str| {
        parameters
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["schema"].clone())
            .expect("the parameter")
    };
    assert_eq!(named("model")["enum"], json!(["titanic", "max"]));
    assert_eq!(named("model")["default"], "titanic");
    assert_eq!(named("version")["enum"], json!(["1.0"]));

    let csv = std::fs::read(dir.join("test_data").join("titanic_survived.csv")).expect("a CSV");
    let post_csv = |path: &str| {
        ok_json(
            app.client
                .post(app.url(path))
                .header("content-type", "text/csv")
                .body(csv.clone())
                .send()
                .expect("POST"),
        )
    };
    for (path, route) in [
        ("/predictions/titanic", "/predictions/{model}"),
        ("/explanations/titanic", "/explanations/{model}"),
        ("/model/predict", "/model/predict"),
        ("/model/explain", "/model/explain"),
    ] {
        assert_answer_documented(&document, "post", route, &post_csv(path));
    }
}
