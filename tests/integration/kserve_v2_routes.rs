//! KServe's v2 protocol over real HTTP: metadata, health, `infer` with BYTES and every numeric
//! datatype, JSON and binary tensors, output selection, the documented request files, refusals;
//! and `explain`, as TorchServe's `kservev2` envelope answers it.

use max_mnist_api::LoadedModel;
use max_mnist_core::model::softmax;
use max_mnist_core::{Model, RawInput};
use serde_json::{json, Value};

use crate::exactness::SAMPLE_LOGITS;
use crate::helpers::{
    json_numbers, kserve_error, nested_numbers, ok_json, project_root, sample,
    sample_base64 as base64_sample, sample_pixels as pixels, spawn_app, spawn_app_serving,
    titanic_model, upstream_model, TestApp,
};

pub fn output<'a>(body: &'a Value, name: &str) -> &'a Value {
    body["outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no output {name} in {body}"))
}

/// A 200 answer with binary tensors (Triton's extension): its JSON header and the bytes after it.
fn binary_answer(response: reqwest::blocking::Response) -> (Value, Vec<u8>) {
    assert_eq!(response.status(), 200);
    let json_length: usize = response
        .headers()
        .get("Inference-Header-Content-Length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Inference-Header-Content-Length");
    let mut bytes = response.bytes().expect("body").to_vec();
    let binary = bytes.split_off(json_length);
    let header = serde_json::from_slice(&bytes).expect("JSON header");
    (header, binary)
}

#[test]
fn server_and_model_metadata_and_health() {
    let app = spawn_app();
    let server = ok_json(app.get("/v2"));
    assert_eq!(server["name"], "max-mnist");
    assert_eq!(ok_json(app.get("/v2/health/live")), json!({"live": true}));
    assert_eq!(ok_json(app.get("/v2/health/ready")), json!({"ready": true}));
    for path in ["/v2/models/mnist", "/v2/models/mnist/versions/1"] {
        let model = ok_json(app.get(path));
        assert_eq!(model["name"], "mnist");
        assert_eq!(model["versions"], json!(["1"]));
        assert_eq!(output(&model, "predict")["datatype"], "INT64");
        assert_eq!(output(&model, "probabilities")["shape"], json!([-1, 10]));
    }
    assert_eq!(
        ok_json(app.get("/v2/models/mnist/ready")),
        json!({"name": "mnist", "ready": true})
    );
    for path in ["/v2/models/resnet", "/v2/models/mnist/versions/2/ready"] {
        assert!(kserve_error(app.get(path), 404).contains("mnist"), "{path}");
    }
}

#[test]
fn bytes_and_every_numeric_datatype_give_pytorchs_answers() {
    let app = spawn_app();
    let digits: Vec<u8> = (0..10).collect();
    let bytes = json!({"id": "batch-1", "inputs": [{"name": "input-0", "shape": [10], "datatype": "BYTES",
        "data": digits.iter().map(|&d| base64_sample(d)).collect::<Vec<_>>()}]});
    let unit: Vec<f64> = digits
        .iter()
        .flat_map(|&d| pixels(d))
        .map(|p| f64::from(p) / 255.0)
        .collect();
    let whole: Vec<u64> = digits
        .iter()
        .flat_map(|&d| pixels(d))
        .map(u64::from)
        .collect();
    let bodies = [
        bytes,
        json!({"id": "batch-1", "inputs": [{"name": "x", "shape": [10, 28, 28], "datatype": "FP32", "data": unit}]}),
        json!({"id": "batch-1", "inputs": [{"name": "x", "shape": [10, 784], "datatype": "FP64", "data": unit}]}),
        json!({"id": "batch-1", "inputs": [{"name": "x", "shape": [10, 1, 28, 28], "datatype": "UINT8", "data": whole}]}),
        json!({"id": "batch-1", "inputs": [{"name": "x", "shape": [-1, 784], "datatype": "INT32", "data": whole}]}),
        json!({"id": "batch-1", "inputs": [{"name": "x", "shape": [10, 28, 28], "datatype": "INT64", "data": whole}]}),
    ];
    for body in bodies {
        let answer = ok_json(app.v2_infer("mnist", &body));
        assert_eq!(answer["id"], "batch-1");
        assert_eq!(answer["model_name"], "mnist");
        assert_eq!(answer["model_version"], "1");
        let predict = output(&answer, "predict");
        assert_eq!(predict["datatype"], "INT64");
        assert_eq!(predict["shape"], json!([10]));
        assert_eq!(
            predict["data"],
            json!(digits),
            "{}",
            body["inputs"][0]["datatype"]
        );
        let probabilities = output(&answer, "probabilities");
        assert_eq!(probabilities["shape"], json!([10, 10]));
        let values: Vec<f64> = probabilities["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|v| v.as_f64().expect("f64"))
            .collect();
        for (digit, row) in values.chunks_exact(10).enumerate() {
            let expected = softmax(&SAMPLE_LOGITS[digit]);
            for (got, want) in row.iter().zip(expected) {
                assert!((got - f64::from(want)).abs() < 1e-5, "digit {digit}");
            }
        }
    }
}

#[test]
fn the_requested_outputs_are_the_ones_sent() {
    let app = spawn_app();
    let body = json!({"inputs": [{"name": "input-0", "shape": [1], "datatype": "BYTES", "data": [base64_sample(6)]}],
        "outputs": [{"name": "predict"}]});
    let answer = ok_json(app.post_json("/v2/models/mnist/versions/1/infer", &body));
    assert_eq!(answer["outputs"].as_array().map(Vec::len), Some(1));
    assert_eq!(output(&answer, "predict")["data"], json!([6]));
    assert!(answer.get("id").is_none());
}

#[test]
fn binary_tensors_in_and_out_as_tritonclient_sends_them() {
    let app = spawn_app();
    let floats: Vec<u8> = [3u8, 8]
        .iter()
        .flat_map(|&d| pixels(d))
        .flat_map(|p| (f32::from(p) / 255.0).to_le_bytes())
        .collect();
    let header = json!({"inputs": [{"name": "x", "shape": [2, 28, 28], "datatype": "FP32",
            "parameters": {"binary_data_size": floats.len()}}],
        "outputs": [{"name": "predict", "parameters": {"binary_data": true}}, {"name": "probabilities"}]})
    .to_string();
    let mut body = header.clone().into_bytes();
    body.extend_from_slice(&floats);
    let response = app
        .client
        .post(app.url("/v2/models/mnist/infer"))
        .header("Inference-Header-Content-Length", header.len().to_string())
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .expect("POST");
    let (answer, binary) = binary_answer(response);
    assert_eq!(
        output(&answer, "predict")["parameters"]["binary_data_size"],
        16
    );
    let digits: Vec<i64> = binary
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    assert_eq!(digits, [3, 8]);
    assert_eq!(output(&answer, "probabilities")["shape"], json!([2, 10]));

    let image = sample(5);
    let mut element = (image.len() as u32).to_le_bytes().to_vec();
    element.extend_from_slice(&image);
    let header = json!({"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES",
        "parameters": {"binary_data_size": element.len()}}]})
    .to_string();
    let mut body = header.clone().into_bytes();
    body.extend_from_slice(&element);
    let answer: Value = app
        .client
        .post(app.url("/v2/models/mnist/infer"))
        .header("Inference-Header-Content-Length", header.len().to_string())
        .body(body)
        .send()
        .expect("POST")
        .json()
        .expect("JSON");
    assert_eq!(output(&answer, "predict")["data"], json!([5]));
}

#[test]
fn the_documented_request_files_give_the_documented_answers() {
    let app = spawn_app();
    let read = |name: &str| -> Value {
        let path = project_root().join("samples").join("requests").join(name);
        serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("JSON")
    };
    let v1 = ok_json(app.v1_predict("mnist", &read("v1-mnist.json")));
    assert_eq!(v1, json!({"predictions": [0]}));
    for (file, digit) in [("v2-bytes.json", 1), ("v2-fp32.json", 2)] {
        let answer = ok_json(app.v2_infer("mnist", &read(file)));
        assert_eq!(output(&answer, "predict")["data"], json!([digit]), "{file}");
        let explained = ok_json(app.v2_explain("mnist", &read(file)));
        assert_eq!(explained["id"], file.trim_end_matches(".json"));
        assert_eq!(v2_attributions(&explained, &[1, 1, 28, 28]).len(), 784);
    }
    let explained = ok_json(app.v1_explain("mnist", &read("v1-mnist.json")));
    assert_eq!(nested_numbers(&explained["explanations"]).0, [1, 1, 28, 28]);
}

#[test]
fn bad_inference_requests_are_400s_with_a_kserve_error() {
    let app = spawn_app();
    let image = base64_sample(7);
    let cases = [
        (json!({"inputs": []}), "0 inputs"),
        (
            json!({"inputs": [{"name": "a", "shape": [1], "datatype": "BYTES", "data": [image]},
                           {"name": "b", "shape": [1], "datatype": "BYTES", "data": [image]}]}),
            "2 inputs",
        ),
        (
            json!({"inputs": [{"name": "a", "shape": [2], "datatype": "BYTES", "data": [image]}]}),
            "shape [2]",
        ),
        (
            json!({"inputs": [{"name": "a", "shape": [1, 28, 28], "datatype": "FP16", "data": vec![0.0; 784]}]}),
            "FP16",
        ),
        (
            json!({"inputs": [{"name": "a", "shape": [1, 27, 29], "datatype": "FP32", "data": vec![0.0; 783]}]}),
            "783",
        ),
        (
            json!({"inputs": [{"name": "a", "shape": [2, 784], "datatype": "FP32", "data": vec![0.0; 784]}]}),
            "shape [2, 784]",
        ),
        (
            json!({"inputs": [{"name": "a", "shape": [1], "datatype": "BYTES", "data": [image]}],
                "outputs": [{"name": "logits"}]}),
            "unknown output `logits`",
        ),
        (
            json!({"inputs": [{"name": "a", "shape": [1], "datatype": "BYTES", "data": [7]}]}),
            "strings",
        ),
        (
            json!({"inputs": [{"name": "a", "shape": [1], "datatype": "BYTES"}]}),
            "no `data`",
        ),
    ];
    for (body, says) in cases {
        let message = kserve_error(app.v2_infer("mnist", &body), 400);
        assert!(message.contains(says), "{says}: {message}");
    }
    let message = kserve_error(
        app.client
            .post(app.url("/v2/models/mnist/infer"))
            .header("Inference-Header-Content-Length", "999")
            .body("{}")
            .send()
            .expect("POST"),
        400,
    );
    assert!(message.contains("999"), "{message}");
    app.assert_still_serving();
}

#[test]
fn a_batch_of_64_is_one_forward_pass_equal_to_64_single_requests() {
    let app = spawn_app();
    let batch_passes = |app: &TestApp| -> f64 {
        app.metrics()
            .lines()
            .find_map(|line| {
                line.strip_prefix("max_mnist_batch_size_bucket{model=\"mnist\",le=\"32\"} ")
            })
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let request = |digits: &[u8]| {
        json!({"inputs": [{"name": "input-0", "shape": [digits.len()], "datatype": "BYTES",
            "data": digits.iter().map(|&d| base64_sample(d)).collect::<Vec<_>>()}]})
    };
    let probabilities = |answer: &Value| -> Vec<f64> {
        output(answer, "probabilities")["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|v| v.as_f64().expect("f64"))
            .collect()
    };
    let digits: Vec<u8> = (0..64).map(|i| (i * 7 % 10) as u8).collect();
    let small_passes_before = batch_passes(&app);
    let batch = ok_json(app.v2_infer("mnist", &request(&digits)));
    assert_eq!(
        batch_passes(&app),
        small_passes_before,
        "the 64 instances went through one pass of more than 32"
    );
    let batch_probabilities = probabilities(&batch);
    for (index, &digit) in digits.iter().enumerate() {
        let single = ok_json(app.v2_infer("mnist", &request(&[digit])));
        let expected = &batch_probabilities[index * 10..index * 10 + 10];
        for (got, want) in probabilities(&single).iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "instance {index}");
        }
    }
}

/// The attributions of a v2 `explain` answer, checked to be one output named `explain`, FP64, of
/// `shape`, as TorchServe's `kservev2` envelope answers (`ts/torch_handler/request_envelope/
/// kservev2.py`, `_to_json`: the name `explain` when the request is an explanation, the datatype
/// of the attributions, which Captum gives as float64 lists).
pub fn v2_attributions(answer: &Value, shape: &[usize]) -> Vec<f64> {
    let outputs = answer["outputs"].as_array().expect("outputs");
    assert_eq!(outputs.len(), 1, "{answer}");
    assert_eq!(outputs[0]["name"], "explain");
    assert_eq!(outputs[0]["datatype"], "FP64");
    assert_eq!(outputs[0]["shape"], json!(shape));
    json_numbers(&outputs[0]["data"])
}

/// Whether served attributions are the expected ones, to within `f32` rounding.
pub fn same_attributions(served: &[f64], expected: &[f32]) -> bool {
    served.len() == expected.len()
        && served
            .iter()
            .zip(expected)
            .all(|(a, b)| (a - f64::from(*b)).abs() <= 1e-6)
}

fn bytes_request(digits: &[u8], extra: Value) -> Value {
    let mut body = json!({"inputs": [{"name": "input-0", "shape": [digits.len()], "datatype": "BYTES",
        "data": digits.iter().map(|&d| base64_sample(d)).collect::<Vec<_>>()}]});
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    body
}

#[test]
fn explain_answers_the_attributions_as_an_fp64_tensor_equal_to_the_v1_explanation() {
    let app = spawn_app();
    let model = upstream_model();
    let explained = |digit: u8, target: usize, steps: usize| {
        let input = model
            .pre_process(RawInput::File(&sample(digit)))
            .expect("a sample");
        model
            .explain(&input, target, steps)
            .expect("explains")
            .attributions
    };
    let answer = ok_json(app.v2_explain("mnist", &bytes_request(&[3, 8], json!({"id": "why-1"}))));
    assert_eq!(answer["id"], "why-1");
    assert_eq!(answer["model_name"], "mnist");
    assert_eq!(answer["model_version"], "1");
    let served = v2_attributions(&answer, &[2, 1, 28, 28]);
    // MAX's model is explained of its predicted digit, with 15 steps, on every protocol.
    assert!(same_attributions(&served[..784], &explained(3, 3, 15)));
    assert!(same_attributions(&served[784..], &explained(8, 8, 15)));
    let v1 = ok_json(app.v1_explain(
        "mnist",
        &json!({"instances": [{"data": base64_sample(3)}, {"data": base64_sample(8)}]}),
    ));
    assert_eq!(
        nested_numbers(&v1["explanations"]),
        (vec![2, 1, 28, 28], served.clone()),
        "the v1 explanation of the same images"
    );

    let unit: Vec<f32> = [3u8, 8]
        .iter()
        .flat_map(|&d| pixels(d))
        .map(|p| f32::from(p) / 255.0)
        .collect();
    for shape in [json!([2, 1, 28, 28]), json!([2, 784])] {
        let tensor =
            json!({"inputs": [{"name": "x", "shape": shape, "datatype": "FP32", "data": unit}]});
        let answer = ok_json(app.v2_explain("mnist", &tensor));
        assert!(answer.get("id").is_none());
        let from_tensor = v2_attributions(&answer, &[2, 1, 28, 28]);
        let largest = from_tensor
            .iter()
            .zip(&served)
            .map(|(a, b)| (a - b).abs())
            .fold(0f64, f64::max);
        assert!(largest <= 1e-5, "FP32 {shape} vs BYTES: {largest}");
    }

    let named = bytes_request(&[3], json!({"parameters": {"target": 5, "n_steps": 30}}));
    let answer = ok_json(app.post_json("/v2/models/mnist/versions/1/explain", &named));
    let served = v2_attributions(&answer, &[1, 1, 28, 28]);
    assert!(same_attributions(&served, &explained(3, 5, 30)));
    let named = bytes_request(&[3], json!({"parameters": {"target": 5, "steps": 30}}));
    assert_eq!(
        v2_attributions(&ok_json(app.v2_explain("mnist", &named)), &[1, 1, 28, 28]),
        served
    );

    let binary = bytes_request(&[3], json!({"parameters": {"binary_data_output": true}}));
    let response = app.v2_explain("mnist", &binary);
    let (header, data) = binary_answer(response);
    assert_eq!(
        header["outputs"][0]["parameters"]["binary_data_size"],
        784 * 8
    );
    let values: Vec<f64> = data
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    let widened: Vec<f64> = explained(3, 3, 15).into_iter().map(f64::from).collect();
    assert_eq!(
        values, widened,
        "FP64 little-endian, the f32 values widened"
    );
}

#[test]
fn bad_explain_requests_are_4xx_with_a_kserve_error_and_the_server_keeps_serving() {
    let app = spawn_app();
    let parameters = |parameters: Value| bytes_request(&[7], json!({"parameters": parameters}));
    let cases = [
        (json!({"inputs": []}), "0 inputs"),
        (json!({"id": "x"}), "inputs"),
        (
            json!({"inputs": [{"name": "a", "shape": [1], "datatype": "BYTES", "data": ["%%%"]}]}),
            "input `a`",
        ),
        (
            json!({"inputs": [{"name": "a", "shape": [2, 784], "datatype": "FP32", "data": vec![0.0; 784]}]}),
            "shape [2, 784]",
        ),
        (
            parameters(json!({"target": 10})),
            "target must be a class from 0 to 9, got 10",
        ),
        (
            parameters(json!({"target": "zero"})),
            "parameters.target must be a whole number",
        ),
        (
            parameters(json!({"target": -1})),
            "parameters.target must be a whole number",
        ),
        (
            parameters(json!({"steps": 0})),
            "steps must be from 1 to 512, got 0",
        ),
        (
            parameters(json!({"n_steps": 100000})),
            "steps must be from 1 to 512, got 100000",
        ),
        (
            parameters(json!({"steps": 1.5})),
            "parameters.steps must be a whole number",
        ),
    ];
    for (body, says) in cases {
        let message = kserve_error(app.v2_explain("mnist", &body), 400);
        assert!(message.contains(says), "{says}: {message}");
    }
    let not_json = app.post_bytes("/v2/models/mnist/explain", b"{\"inputs\": [".to_vec());
    kserve_error(not_json, 400);
    for path in [
        "/v2/models/resnet/explain",
        "/v2/models/mnist/versions/2/explain",
    ] {
        let message = kserve_error(app.post_json(path, &bytes_request(&[7], json!({}))), 404);
        assert!(message.contains("mnist"), "{path}: {message}");
    }
    app.assert_still_serving();
    let answer = ok_json(app.v2_explain("mnist", &bytes_request(&[7], json!({}))));
    assert_eq!(v2_attributions(&answer, &[1, 1, 28, 28]).len(), 784);
    // TorchServe's kservev2 envelope answers the explanation whatever outputs are named
    // (`kservev2.py`: `format_output` builds the outputs from the answer; the request's `outputs`
    // are never read).
    let named = ok_json(app.v2_explain(
        "mnist",
        &bytes_request(&[7], json!({"outputs": [{"name": "predict"}]})),
    ));
    assert_eq!(v2_attributions(&named, &[1, 1, 28, 28]).len(), 784);
}

#[test]
#[ignore = "needs MNIST_TITANIC_DIR (.ci/run sets it and runs ignored tests)"]
fn titanic_passengers_are_explained_as_an_n_by_12_tensor_equal_to_the_v1_explanation() {
    let model = titanic_model();
    let app = spawn_app_serving(vec![LoadedModel {
        model: model.clone(),
        url: "titanic.mar".into(),
        loaded_at_startup: true,
    }]);
    let rows = [
        [40.0, 1.0, 1.0, 39.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0],
        [22.0, 0.0, 0.0, 7.25, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0],
    ];
    let body = json!({"id": "passengers", "inputs": [{"name": "input-0", "shape": [2, 12],
        "datatype": "FP32", "data": rows.concat()}]});
    let answer = ok_json(app.v2_explain("titanic", &body));
    assert_eq!(answer["id"], "passengers");
    assert_eq!(answer["model_name"], "titanic");
    let served = v2_attributions(&answer, &[2, 12]);
    let v1 = ok_json(app.v1_explain("titanic", &json!({"instances": rows})));
    let names = &model.info().input.feature_names;
    for (index, row) in rows.iter().enumerate() {
        let input = model
            .pre_process(RawInput::Tensor(row))
            .expect("a passenger");
        // The example's target, 1 (Survived), with its 50 steps.
        let expected = model.explain(&input, 1, 50).expect("explains").attributions;
        let attributions = &served[index * 12..index * 12 + 12];
        assert!(same_attributions(attributions, &expected), "row {index}");
        let by_name: Vec<f64> = names
            .iter()
            .map(|name| v1["explanations"][index][name].as_f64().expect("a number"))
            .collect();
        assert_eq!(by_name, attributions, "row {index}: v1 and v2 agree");
    }
    let bytes = bytes_request(&[7], json!({}));
    let message = kserve_error(app.v2_explain("titanic", &bytes), 400);
    assert!(message.contains("numbers, not BYTES"), "{message}");
    app.assert_still_serving();
}
