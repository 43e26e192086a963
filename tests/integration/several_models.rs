//! Several models in one server — TorchServe's `mnist.mar` under `mnist` (first, so it also answers
//! the MAX routes) and the MAX model under `max` — each answering with its own outputs on every
//! protocol; models named on the command line, in the environment and in the configuration; broken
//! models refused at start with a message that names them.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use max_mnist_api::LoadedModel;
use max_mnist_core::{Classification, DefaultTarget, Model, RawInput};
use serde_json::{json, Value};

use crate::helpers::{
    json_numbers, kserve_error, load_model, max_error, ok_json, project_root, sample,
    sample_base64, spawn_app_serving, torchserve_dir, torchserve_error, torchserve_model,
    upstream_weights, zip_of, ServerProcess, TestApp, BINARY,
};
use crate::kserve_v1_routes::predictions;
use crate::kserve_v2_routes::output;

/// Models by the names they are served under.
type Named = Vec<(&'static str, Arc<dyn Model>)>;

/// The example's Net as `mnist` and the MAX model as `max`, in one server.
fn two_models() -> (TestApp, Named) {
    let net = torchserve_model();
    let max = load_model(upstream_weights(), Some("max"));
    let app = spawn_app_serving(vec![
        LoadedModel {
            model: net.clone(),
            url: "mnist.mar".into(),
            loaded_at_startup: true,
        },
        LoadedModel {
            model: max.clone(),
            url: "mnist-classifier.pt".into(),
            loaded_at_startup: true,
        },
    ]);
    (app, vec![("mnist", net), ("max", max)])
}

/// What the model itself says of the ten samples.
fn direct(model: &dyn Model) -> Vec<Classification> {
    let files: Vec<Vec<u8>> = (0..10).map(sample).collect();
    let raws: Vec<RawInput<'_>> = files.iter().map(|f| RawInput::File(f)).collect();
    max_mnist_core::classify(model, &raws).expect("classifies")
}

fn close(served: &[f64], expected: &[f32], tolerance: f64) -> bool {
    served.len() == expected.len()
        && served
            .iter()
            .zip(expected)
            .all(|(a, b)| (a - f64::from(*b)).abs() <= tolerance)
}

#[test]
#[ignore = "needs MNIST_TORCHSERVE_DIR (.ci/run sets it and runs ignored tests)"]
fn each_model_answers_with_its_own_outputs_on_every_protocol() {
    let (app, models) = two_models();
    let digits: Vec<u64> = (0..10).collect();
    let images: Vec<String> = (0..10).map(sample_base64).collect();
    let mut probabilities_of = Vec::new();
    for (name, model) in &models {
        let expected = direct(model.as_ref());
        let classes: Vec<u64> = expected.iter().map(|c| c.class as u64).collect();
        assert_eq!(classes, digits, "{name} reads the ten samples right");

        for digit in 0..10u8 {
            let answer = ok_json(app.torchserve_predict(name, sample(digit)));
            assert_eq!(answer, json!(digit), "TorchServe, {name}");
        }
        let instances: Vec<Value> = images.iter().map(|i| json!({ "data": i })).collect();
        let v1 = predictions(app.v1_predict(name, &json!({ "instances": instances })));
        assert_eq!(v1, digits, "KServe v1, {name}");

        let body = json!({"inputs": [{"name": "input-0", "shape": [10], "datatype": "BYTES", "data": images}]});
        let v2 = ok_json(app.v2_infer(name, &body));
        assert_eq!(v2["model_name"], *name);
        assert_eq!(v2["model_version"], model.info().version);
        assert_eq!(
            output(&v2, "predict")["data"],
            json!(digits),
            "KServe v2, {name}"
        );
        let served = json_numbers(&output(&v2, "probabilities")["data"]);
        let wanted: Vec<f32> = expected
            .iter()
            .flat_map(|c| c.probabilities.clone())
            .collect();
        assert!(
            close(&served, &wanted, 1e-6),
            "KServe v2 probabilities, {name}"
        );
        probabilities_of.push(served);

        let metadata = ok_json(app.get(&format!("/v2/models/{name}")));
        assert_eq!(metadata["name"], *name);
        assert_eq!(metadata["versions"], json!([model.info().version]));

        let input = model
            .pre_process(RawInput::File(&sample(3)))
            .expect("a sample");
        // Each model's own default: TorchServe's handler explains class 0, MAX's the prediction.
        let target = match model.info().explanation.target {
            DefaultTarget::Class(class) => class,
            DefaultTarget::Predicted => 3,
        };
        let explanation = model.explain(&input, target, 15).expect("explains");
        let answer = ok_json(app.torchserve_explain(name, sample(3)));
        let served: Vec<f64> = answer[0]
            .as_array()
            .expect("rows")
            .iter()
            .flat_map(json_numbers)
            .collect();
        assert!(
            close(&served, &explanation.attributions, 1e-6),
            "TorchServe explanation, {name}"
        );
    }
    let largest_difference = probabilities_of[0]
        .iter()
        .zip(&probabilities_of[1])
        .map(|(a, b)| (a - b).abs())
        .fold(0f64, f64::max);
    assert!(
        largest_difference > 1e-3,
        "two networks, two sets of probabilities"
    );

    // The MAX routes answer with the first model.
    let net = &models[0].1;
    let body = ok_json(app.post_form(
        "/model/predict?top_k=10",
        crate::helpers::image_form("file", sample(4)),
    ));
    let expected = direct(net.as_ref());
    for prediction in body["predictions"].as_array().expect("predictions") {
        let class = prediction["prediction"].as_u64().expect("class") as usize;
        let probability = prediction["probability"].as_f64().expect("probability");
        assert!((probability - f64::from(expected[4].probabilities[class])).abs() < 1e-6);
    }
    let metadata = ok_json(app.get("/model/metadata"));
    assert_eq!(metadata["id"], "mnist");
    assert!(
        metadata["source"]
            .as_str()
            .is_some_and(|s| s.contains("pytorch/serve")),
        "{metadata}"
    );
    assert_eq!(ok_json(app.get("/model/labels"))["count"], 10);

    assert_eq!(
        ok_json(app.get("/models")),
        json!({"models": [{"modelName": "max", "modelUrl": "mnist-classifier.pt"},
                          {"modelName": "mnist", "modelUrl": "mnist.mar"}]}),
        "sorted by name, as TorchServe's ApiUtils.getModelList lists them"
    );
    assert_eq!(
        ok_json(app.get("/v1/models")),
        json!({"models": ["mnist", "max"]})
    );
    let described = ok_json(app.get("/models/max"));
    assert_eq!(described[0]["architecture"], "MyConvNet");
    assert_eq!(ok_json(app.get("/models/mnist"))[0]["architecture"], "Net");

    let listed = "`mnist` (version 1.0) and `max` (version 1.0)";
    let message = torchserve_error(
        app.torchserve_predict("resnet", sample(1)),
        404,
        "ModelNotFoundException",
    );
    assert!(message.contains(listed), "{message}");
    let message = kserve_error(app.v1_predict("resnet", &json!({"instances": []})), 404);
    assert!(message.contains(listed), "{message}");
    let message = kserve_error(app.get("/v2/models/resnet/ready"), 404);
    assert!(message.contains(listed), "{message}");
    let message = kserve_error(app.get("/v2/models/max/versions/2"), 404);
    assert!(message.contains("served as version 1.0"), "{message}");

    let metrics = app.metrics();
    for (name, network) in [("mnist", "Net"), ("max", "MyConvNet")] {
        assert!(
            metrics.contains(&format!(
                "max_mnist_model_info{{name=\"{name}\",network=\"{network}\",version=\"1.0\"}} 1"
            )),
            "{metrics}"
        );
        assert!(
            metrics.contains(&format!("max_mnist_batch_size_count{{model=\"{name}\"}}")),
            "{metrics}"
        );
    }
    app.assert_still_serving();
}

/// GET a path of a served process.
fn get(server: &ServerProcess, path: &str) -> Value {
    let response = reqwest::blocking::get(format!("{}{path}", server.url)).expect("GET");
    assert_eq!(response.status(), 200, "{path}\n{}", server.log());
    response.json().expect("JSON")
}

/// The models served, in the order they were named (KServe v1's list keeps it; TorchServe's
/// sorts by name).
fn model_names(server: &ServerProcess) -> Vec<String> {
    get(server, "/v1/models")["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|name| name.as_str().expect("a name").to_owned())
        .collect()
}

#[test]
#[ignore = "needs MNIST_TORCHSERVE_DIR (.ci/run sets it and runs ignored tests)"]
fn models_come_from_the_command_line_the_environment_or_the_configuration() {
    let example = torchserve_dir();
    let store = tempfile::tempdir().expect("temp dir");
    std::fs::copy(example.join("mnist.mar"), store.path().join("mnist.mar")).expect("copy");
    std::fs::copy(upstream_weights(), store.path().join("max.pt")).expect("copy");
    let store_path = store.path().to_str().expect("UTF-8");

    let flags = ServerProcess::serve(
        &[
            "--model-store",
            store_path,
            "--models",
            "mnist=mnist.mar",
            "max=max.pt",
        ],
        &[],
    );
    assert_eq!(model_names(&flags), ["mnist", "max"]);
    assert_eq!(get(&flags, "/models/max")[0]["modelVersion"], "1.0");

    // A bare path takes the manifest's name, as `torchserve --models mnist.mar` does.
    let env = ServerProcess::serve(
        &[],
        &[
            ("MODELS", "mnist.mar,max=max.pt"),
            ("MODEL_STORE", store_path),
        ],
    );
    assert_eq!(model_names(&env), ["mnist", "max"]);

    let config = store.path().join("models.toml");
    std::fs::write(
        &config,
        format!(
            "model_store = \"{store_path}\"\n\n[[models]]\nname = \"digits\"\npath = \"max.pt\"\nversion = \"7\"\n\n[[models]]\npath = \"mnist.mar\"\n"
        ),
    )
    .expect("write");
    let configured = ServerProcess::serve(&["--config", config.to_str().expect("UTF-8")], &[]);
    assert_eq!(model_names(&configured), ["digits", "mnist"]);
    assert_eq!(get(&configured, "/models/digits")[0]["modelVersion"], "7");
    let digit: Value = reqwest::blocking::Client::new()
        .put(format!("{}/predictions/digits/7", configured.url))
        .body(sample(8))
        .send()
        .expect("PUT")
        .json()
        .expect("JSON");
    assert_eq!(digit, json!(8));
    let labels = get(&configured, "/model/labels");
    assert_eq!(
        labels["count"], 10,
        "the first model answers the MAX routes"
    );
    let log = configured.log();
    assert!(
        log.contains("model `mnist` version 1.0: Net (TorchServe's MNIST example) from mnist.mar"),
        "{log}"
    );
}

/// Runs `max-mnist serve --port 0 ARGS`, which must exit (with an error) within 30 s.
fn serve_refused(args: &[&str]) -> String {
    let mut child = Command::new(BINARY)
        .current_dir(project_root())
        .args(["serve", "--host", "127.0.0.1", "--port", "0"])
        .args(args)
        .env_remove("MODELS")
        .env_remove("MODEL_STORE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run max-mnist");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("`serve {}` started instead of refusing", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output: Output = child.wait_with_output().expect("output");
    assert!(
        !output.status.success(),
        "`serve {}` succeeded",
        args.join(" ")
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn manifest(serialized_file: &str) -> Vec<u8> {
    json!({"runtime": "python", "model": {"modelName": "broken", "serializedFile": serialized_file,
        "handler": "mnist_handler.py", "modelVersion": "1.0"}, "archiverVersion": "0.12.0"})
    .to_string()
    .into_bytes()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write");
    path.to_str().expect("UTF-8").to_owned()
}

#[test]
#[ignore = "needs MNIST_TORCHSERVE_DIR (.ci/run sets it and runs ignored tests)"]
fn broken_models_stop_the_start_with_a_message_naming_them() {
    let example = torchserve_dir();
    let dir = tempfile::tempdir().expect("temp dir");
    let mar = std::fs::read(example.join("mnist.mar")).expect("read mnist.mar");

    let other_network = {
        let tensors = [(
            "layer.weight".to_owned(),
            candle_core::Tensor::zeros((3, 3), candle_core::DType::F32, &candle_core::Device::Cpu)
                .expect("tensor"),
        )]
        .into_iter()
        .collect::<std::collections::HashMap<_, _>>();
        let path = dir.path().join("other.safetensors");
        candle_core::safetensors::save(&tensors, &path).expect("save");
        path.to_str().expect("UTF-8").to_owned()
    };
    let truncated = write(dir.path(), "truncated.mar", &mar[..mar.len() / 2]);
    let missing = write(
        dir.path(),
        "missing.mar",
        &zip_of(&[("MAR-INF/MANIFEST.json", &manifest("gone.pt"))]),
    );
    let zeros = vec![0u8; 64 << 20];
    let bomb_bytes = zip_of(&[
        ("MAR-INF/MANIFEST.json", &manifest("w.pt")),
        ("w.pt", &zeros),
    ]);
    assert!(
        bomb_bytes.len() < 1 << 20,
        "64 MiB deflate to {} bytes",
        bomb_bytes.len()
    );
    let bomb = write(dir.path(), "bomb.mar", &bomb_bytes);
    let small_limit = write(
        dir.path(),
        "limits.toml",
        b"[limits]\nmax_model_bytes = 16777216\n",
    );
    let good = example.join("mnist.mar");
    let good = good.to_str().expect("UTF-8");

    let cases: [(Vec<String>, &[&str]); 6] = [
        (
            vec!["--models".into(), format!("other={other_network}")],
            &[
                "`other`",
                "none of the networks this server runs",
                "layer.weight [3, 3]",
                "MyConvNet (MAX PyTorch MNIST",
                "Net (TorchServe's MNIST example",
            ],
        ),
        (
            vec!["--models".into(), format!("cut={truncated}")],
            &["`cut`", "truncated.mar", "is the file complete"],
        ),
        (
            vec!["--models".into(), format!("gone={missing}")],
            &[
                "`gone`",
                "serializedFile `gone.pt`, which the archive does not hold",
            ],
        ),
        (
            vec![
                "--config".into(),
                small_limit.clone(),
                "--models".into(),
                format!("bomb={bomb}"),
            ],
            &[
                "`bomb`",
                "w.pt inflated",
                "16777216",
                "limits.max_model_bytes",
            ],
        ),
        (
            vec!["--models".into(), format!("good={good},bad={truncated}")],
            &["`bad`", "truncated.mar"],
        ),
        (
            vec![
                "--models".into(),
                format!("twin={good}"),
                format!("twin={}", upstream_weights().display()),
            ],
            &["two models are named `twin`"],
        ),
    ];
    for (args, says) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let message = serve_refused(&args);
        for words in says {
            assert!(
                message.contains(words),
                "{args:?}: no {words:?} in:\n{message}"
            );
        }
    }
    let message = serve_refused(&["--models", "mnist="]);
    assert!(message.contains("NAME=PATH"), "{message}");
}

#[test]
#[ignore = "needs MNIST_TORCHSERVE_DIR (.ci/run sets it and runs ignored tests)"]
fn the_max_routes_refuse_what_the_first_model_cannot_do() {
    let (app, _) = two_models();
    let message = max_error(
        app.post_form(
            "/model/predict?top_k=11",
            crate::helpers::image_form("file", sample(4)),
        ),
        400,
    );
    assert!(message.contains("top_k must be from 1 to 10"), "{message}");
    let message = max_error(app.explain(sample(4), "?target=10"), 400);
    assert!(
        message.contains("target must be a class from 0 to 9"),
        "{message}"
    );
    app.assert_still_serving();
}

#[test]
#[ignore = "needs MNIST_TORCHSERVE_DIR (.ci/run sets it and runs ignored tests)"]
fn labels_and_the_openapi_document_come_from_the_models_served() {
    let example = torchserve_dir();
    // The example's archive with an index_to_name.json, as torch-model-archiver --extra-files adds it.
    let original = std::fs::read(example.join("mnist.mar")).expect("read mnist.mar");
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(original)).expect("a zip");
    let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).expect("an entry");
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).expect("inflate");
        entries.push((entry.name().expect("a name").into_owned(), data));
    }
    let names = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    let labels: serde_json::Map<String, Value> = names
        .iter()
        .enumerate()
        .map(|(i, name)| (i.to_string(), json!(name)))
        .collect();
    entries.push((
        "index_to_name.json".into(),
        Value::Object(labels).to_string().into_bytes(),
    ));
    let dir = tempfile::tempdir().expect("temp dir");
    let borrowed: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(name, data)| (name.as_str(), data.as_slice()))
        .collect();
    let path = write(dir.path(), "named.mar", &zip_of(&borrowed));
    let model = load_model(Path::new(&path), Some("words"));
    let app = spawn_app_serving(vec![LoadedModel {
        model,
        url: "named.mar".into(),
        loaded_at_startup: true,
    }]);

    let served = ok_json(app.get("/model/labels"));
    assert_eq!(served["count"], 10);
    assert_eq!(served["labels"][7], json!({"id": "7", "name": "seven"}));
    assert_eq!(
        ok_json(app.torchserve_predict("words", sample(7))),
        json!(7)
    );

    let document = ok_json(app.get("/openapi.json"));
    let parameters = document["paths"]["/predictions/{model}"]["post"]["parameters"]
        .as_array()
        .expect("parameters");
    let model = parameters
        .iter()
        .find(|p| p["name"] == "model")
        .expect("a model parameter");
    assert_eq!(model["schema"]["default"], "words", "{model}");
    let description = model["description"].as_str().expect("a description");
    assert!(
        description.contains("`words` (Net from TorchServe's MNIST example, version 1.0)"),
        "{description}"
    );
}

#[test]
#[ignore = "needs MNIST_TORCHSERVE_DIR (.ci/run sets it and runs ignored tests)"]
fn concurrent_clients_of_both_models_each_get_their_own_answers() {
    let (app, models) = two_models();
    let app = &app;
    std::thread::scope(|scope| {
        for client in 0..8u8 {
            scope.spawn(move || {
                // Half the clients ask Net (its work queue), half MyConvNet (inline), interleaved.
                let name = if client % 2 == 0 { "mnist" } else { "max" };
                for round in 0..15u8 {
                    let digit = (client + round) % 10;
                    let answer = ok_json(app.torchserve_predict(name, sample(digit)));
                    assert_eq!(answer, json!(digit), "{name}, client {client}");
                }
            });
        }
        // Explanations share Net's queue with its predictions.
        scope.spawn(move || {
            for digit in [3u8, 8] {
                let answer = ok_json(app.torchserve_explain("mnist", sample(digit)));
                assert_eq!(answer[0].as_array().map(Vec::len), Some(28));
            }
        });
    });
    let metrics = app.metrics();
    let count = |model: &str| {
        metrics
            .lines()
            .find_map(|line| {
                line.strip_prefix(&format!("max_mnist_batch_size_count{{model=\"{model}\"}} "))
            })
            .and_then(|v| v.parse::<f64>().ok())
    };
    assert_eq!(
        count("mnist"),
        Some(60.0),
        "one forward pass per Net request"
    );
    assert_eq!(count("max"), Some(60.0));
    drop(models);
}
