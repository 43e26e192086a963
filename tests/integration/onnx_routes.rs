//! ONNX models on every protocol over real HTTP: TorchServe's `image_classifier` answer for
//! `squeezenet1_1.mar` (`{"label": probability, …}`, top 5, as its `postprocess` maps classes to
//! labels), MAX's, KServe v1's and v2's answers, tensors of the graph's input shape passed
//! unchanged, a features graph taking CSV rows and JSON records by feature name, explanations
//! refused with a 400 on each route, and the `tritonclient` and `kserve` Python clients.

use max_mnist_api::LoadedModel;
use max_mnist_core::ModelSettings;
use reqwest::blocking::multipart::{Form, Part};
use serde_json::{json, Value};

use crate::exactness::argmax;
use crate::helpers::{
    base64_of, data_dir, json_numbers, kserve_error, max_error, ok_json, onnx_dir, onnx_model,
    onnx_reference, project_root, spawn_app_serving, torchserve_error, ServerProcess, TestApp,
};

const NEEDS: &str = "needs MNIST_ONNX_DIR and ORT_DYLIB_PATH";

/// SqueezeNet (the MAX routes' model) and the Titanic export, served side by side.
fn onnx_app() -> TestApp {
    let loaded = |model, url: &str| LoadedModel {
        model,
        url: url.into(),
        loaded_at_startup: true,
    };
    spawn_app_serving(vec![
        loaded(
            onnx_model("squeezenet1_1.mar", ModelSettings::default()),
            "squeezenet1_1.mar",
        ),
        loaded(
            onnx_model("titanic.onnx", ModelSettings::default()),
            "titanic.onnx",
        ),
    ])
}

fn kitten() -> Vec<u8> {
    std::fs::read(onnx_dir().join("kitten.jpg")).expect("kitten.jpg")
}

/// The labels of ONNX Runtime's top 5 for the kitten.
fn reference_top5() -> Vec<String> {
    onnx_reference()["kitten_squeezenet1_1"]["top5"]
        .as_array()
        .expect("top5")
        .iter()
        .map(|item| item["label"].as_str().expect("label").to_owned())
        .collect()
}

/// SqueezeNet's reference batch: its three inputs, and ONNX Runtime's most probable classes.
fn squeezenet_reference() -> (Vec<Vec<f32>>, Vec<usize>) {
    let reference = &onnx_reference()["models"]["squeezenet1_1"];
    let instance = 3 * 224 * 224;
    let inputs = (0..3)
        .map(|n| {
            (0..instance)
                .map(|j| ((n * instance + j) * 7919 % 255) as f32 / 255.0)
                .collect()
        })
        .collect();
    let classes = reference["outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .map(|row| {
            let row: Vec<f32> = json_numbers(row).iter().map(|&v| v as f32).collect();
            argmax(&row)
        })
        .collect();
    (inputs, classes)
}

#[test]
#[ignore = "needs MNIST_ONNX_DIR and ORT_DYLIB_PATH (.ci/run sets them and runs ignored tests)"]
fn an_image_classifier_archive_answers_every_protocol() {
    let app = onnx_app();
    let expected = reference_top5();

    // TorchServe: image_classifier's answer, the top 5 labels with their probabilities.
    let response = app.torchserve_predict("squeezenet1_1", kitten());
    assert_eq!(response.status(), 200);
    let text = response.text().expect("text");
    let answer: Value = serde_json::from_str(&text).expect("JSON");
    let answer = answer.as_object().expect("{label: probability}");
    let mut labels: Vec<&String> = answer.keys().collect();
    // In the answer's own order (serde_json's map sorts its keys): most probable first.
    labels.sort_by_key(|label| text.find(&format!("\"{label}\"")));
    assert_eq!(labels, expected.iter().collect::<Vec<_>>(), "{text}");
    let probabilities: Vec<f64> = labels
        .iter()
        .map(|l| answer[*l].as_f64().expect("a number"))
        .collect();
    assert!(
        probabilities.windows(2).all(|w| w[0] >= w[1]),
        "{probabilities:?}"
    );
    let base64 = ok_json(app.post_json(
        "/predictions/squeezenet1_1",
        &json!({"data": base64_of(&kitten())}),
    ));
    assert_eq!(base64.as_object().expect("a map").len(), 5);

    // MAX: the first model's most probable classes, named by `/model/labels`.
    let form = Form::new().part("file", Part::bytes(kitten()).file_name("kitten.jpg"));
    let max = ok_json(app.post_form("/model/predict?top_k=5", form));
    let labels = ok_json(app.get("/model/labels"));
    assert_eq!(labels["count"], 1000);
    let max_labels: Vec<&str> = max["predictions"]
        .as_array()
        .expect("predictions")
        .iter()
        .map(|p| {
            let class = p["prediction"].as_u64().expect("a class") as usize;
            labels["labels"][class]["name"].as_str().expect("a label")
        })
        .collect();
    assert_eq!(max_labels, expected, "{max}");

    // KServe v1: a picture, and the reference tensors unchanged.
    let (inputs, classes) = squeezenet_reference();
    let v1 = ok_json(app.post_json(
        "/v1/models/squeezenet1_1:predict",
        &json!({"instances": [{"data": base64_of(&kitten())}, inputs[0], inputs[1]]}),
    ));
    let first_class = ok_json(app.get("/v1/models/squeezenet1_1"));
    assert_eq!(first_class["ready"], true);
    assert_eq!(v1["predictions"][1], classes[0], "{v1}");
    assert_eq!(v1["predictions"][2], classes[1], "{v1}");

    // KServe v2: FP32 [3,3,224,224], ONNX Runtime's classes and probabilities.
    let flat: Vec<f32> = inputs.concat();
    let v2 = ok_json(app.post_json(
        "/v2/models/squeezenet1_1/infer",
        &json!({"id": "batch", "inputs": [{"name": "input", "datatype": "FP32", "shape": [3, 3, 224, 224], "data": flat}]}),
    ));
    assert_eq!(
        v2["outputs"][0]["data"],
        json!(classes),
        "{}",
        v2["outputs"][0]
    );
    assert_eq!(v2["outputs"][1]["shape"], json!([3, 1000]));
    let metadata = ok_json(app.get("/v2/models/squeezenet1_1"));
    assert_eq!(metadata["inputs"][0]["name"], "input");
    let description = ok_json(app.get("/models/squeezenet1_1"));
    assert_eq!(description[0]["architecture"], "ONNX");
}

#[test]
#[ignore = "needs MNIST_ONNX_DIR and ORT_DYLIB_PATH (.ci/run sets them and runs ignored tests)"]
fn a_tensor_of_the_wrong_shape_a_bad_picture_and_explanations_are_4xx_and_serving_goes_on() {
    let app = onnx_app();
    let wrong_shape = app.post_json(
            "/v2/models/squeezenet1_1/infer",
            &json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 28, 28], "data": vec![0.0; 2352]}]}),
        );
    let status = wrong_shape.status();
    let v2 = wrong_shape.text().expect("text");
    assert_eq!(status, 400, "{v2}");
    assert!(v2.contains("3,224,224"), "{v2}");
    let v1 = kserve_error(
        app.post_json(
            "/v1/models/squeezenet1_1:predict",
            &json!({"instances": [[1.0, f64::MAX]]}),
        ),
        400,
    );
    assert!(v1.contains("150528"), "{v1}");
    let picture = torchserve_error(
        app.torchserve_predict("squeezenet1_1", b"not a picture at all".to_vec()),
        400,
        "BadRequestException",
    );
    assert!(picture.contains("image"), "{picture}");
    // Every explanation route: a clear 400 naming why, on TorchServe's, KServe's and MAX's routes.
    let refused = "cannot be explained yet";
    let ts = torchserve_error(
        app.torchserve_explain("squeezenet1_1", kitten()),
        400,
        "BadRequestException",
    );
    assert!(ts.contains(refused), "{ts}");
    let v1 = kserve_error(
        app.post_json(
            "/v1/models/squeezenet1_1:explain",
            &json!({"instances": [{"data": base64_of(&kitten())}]}),
        ),
        400,
    );
    assert!(v1.contains(refused), "{v1}");
    let v2 = kserve_error(
        app.post_json(
            "/v2/models/titanic/explain",
            &json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 12], "data": vec![1.0; 12]}]}),
        ),
        400,
    );
    assert!(v2.contains(refused), "{v2}");
    let form = Form::new().part("file", Part::bytes(kitten()).file_name("kitten.jpg"));
    let max = max_error(app.post_form("/model/explain", form), 400);
    assert!(max.contains(refused), "{max}");
    let answer = ok_json(app.torchserve_predict("squeezenet1_1", kitten()));
    assert_eq!(answer.as_object().expect("still serving").len(), 5);
}

#[test]
#[ignore = "needs MNIST_ONNX_DIR and ORT_DYLIB_PATH (.ci/run sets them and runs ignored tests)"]
fn a_features_graph_takes_rows_by_feature_name_and_tensors() {
    let app = onnx_app();
    // A woman in first class and a man in third, encoded as the Titanic example encodes them.
    let woman = [
        29.0, 0.0, 0.0, 211.3, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0,
    ];
    let man = [25.0, 0.0, 0.0, 7.05, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0];
    let header: Vec<String> = (0..12).map(|i| format!("feature_{i}")).collect();
    let row = |values: &[f64]| {
        values
            .iter()
            .map(f64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let csv = format!("{}\n{}\n{}\n", header.join(","), row(&woman), row(&man));
    let labels = ok_json(
        app.client
            .put(app.url("/predictions/titanic"))
            .header("Content-Type", "text/csv")
            .body(csv)
            .send()
            .expect("PUT"),
    );
    assert_eq!(
        labels,
        json!(["1", "0"]),
        "a label per row (the class numbers: no labels given)"
    );
    let record: Value = header
        .iter()
        .cloned()
        .zip(woman.iter().map(|&v| json!(v)))
        .collect();
    assert_eq!(
        ok_json(app.post_json("/predictions/titanic", &record)),
        json!(["1"])
    );
    let missing = torchserve_error(
        app.post_json("/predictions/titanic", &json!({"feature_0": 3})),
        400,
        "BadRequestException",
    );
    assert!(missing.contains("feature_1"), "{missing}");
    let v1 = ok_json(app.post_json(
        "/v1/models/titanic:predict",
        &json!({"instances": [woman, man]}),
    ));
    assert_eq!(v1["predictions"], json!([1, 0]));
    let metadata = ok_json(app.get("/v2/models/titanic"));
    assert_eq!(metadata["inputs"][0]["shape"], json!([-1, 12]));
}

#[test]
#[ignore = "needs MNIST_ONNX_DIR, MNIST_CLIENT_PYTHON and ORT_DYLIB_PATH (.ci/run sets them)"]
fn tritonclient_and_kserve_clients_get_onnx_runtimes_outputs() {
    let python = data_dir("MNIST_CLIENT_PYTHON");
    let dir = onnx_dir();
    let models = format!(
        "squeezenet1_1={},titanic={}",
        dir.join("squeezenet1_1.mar").display(),
        dir.join("titanic.onnx").display()
    );
    let server = ServerProcess::serve(&["--models", &models], &[]);
    let output = std::process::Command::new(&python)
        .arg(project_root().join("tests/clients/check_onnx.py"))
        .arg(&server.url)
        .arg(dir.join("reference.json"))
        .arg(dir.join("kitten.jpg"))
        .output()
        .unwrap_or_else(|err| panic!("run {}: {err}", python.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("all passed"),
        "{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.log()
    );
}

#[test]
#[ignore = "needs MNIST_ONNX_DIR and ORT_DYLIB_PATH (.ci/run sets them and runs ignored tests)"]
fn without_the_runtime_library_an_onnx_model_stops_the_start_naming_the_command() {
    let model = onnx_dir().join("net.onnx");
    let home = tempfile::tempdir().expect("temp dir");
    let output = std::process::Command::new(crate::helpers::BINARY)
        .args(["serve", "--port", "0", "--models"])
        .arg(format!("net={}", model.display()))
        .env_remove("ORT_DYLIB_PATH")
        .env_remove("VIRTUAL_ENV")
        .env_remove("CONDA_PREFIX")
        .env_remove("PYTHONPATH")
        .env("HOME", home.path())
        .output()
        .expect("run the binary");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("pip install onnxruntime==1.32.0"),
        "{stderr}"
    );
    let named = std::process::Command::new(crate::helpers::BINARY)
        .args(["serve", "--port", "0", "--models"])
        .arg(format!("net={}", model.display()))
        .env("ORT_DYLIB_PATH", home.path().join("libonnxruntime.so"))
        .output()
        .expect("run the binary");
    let stderr = String::from_utf8_lossy(&named.stderr);
    assert!(!named.status.success());
    assert!(
        stderr.contains("ORT_DYLIB_PATH names") && stderr.contains("not a file"),
        "{stderr}"
    );
}

#[test]
#[ignore = "needs MNIST_ONNX_DIR and ORT_DYLIB_PATH (.ci/run sets them and runs ignored tests)"]
fn an_installed_wheel_is_found_without_any_setting() {
    let Some(library) = std::env::var_os("ORT_DYLIB_PATH") else {
        panic!("{NEEDS}");
    };
    // ORT_DYLIB_PATH is …/site-packages/onnxruntime/capi/libonnxruntime.so.*: the environment is
    // four folders up from site-packages.
    let library = std::path::PathBuf::from(library);
    let venv = library
        .ancestors()
        .nth(6)
        .expect("a virtual environment around the wheel");
    let model = onnx_dir().join("net.onnx");
    let mut server = ServerProcess::run(
        project_root(),
        &[
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--models",
            &format!("net={}", model.display()),
        ],
        &[
            ("VIRTUAL_ENV", venv.to_str().expect("UTF-8")),
            ("ORT_DYLIB_PATH", ""),
        ],
    );
    let answer = reqwest::blocking::Client::new()
        .put(format!("{}/predictions/net", server.url))
        .body(std::fs::read(project_root().join("samples/7.png")).expect("sample"))
        .send()
        .expect("PUT");
    assert_eq!(answer.status(), 200, "{}", server.log());
    assert!(server.log().contains("ONNX"), "{}", server.log());
    let _ = server.child.kill();
    let _ = server.wait_for_exit(std::time::Duration::from_secs(5));
}

#[test]
#[ignore = "needs MNIST_ONNX_DIR and ORT_DYLIB_PATH (.ci/run sets them and runs ignored tests)"]
fn a_features_graph_gets_a_demo_page_made_from_its_feature_names() {
    let app = onnx_app();
    let page = app.get("/demo?model=titanic");
    assert_eq!(page.status(), 200);
    let html = page.text().expect("HTML");
    for feature in ["feature_0", "feature_11"] {
        assert!(
            html.contains(feature),
            "the form has an input for {feature}"
        );
    }
    assert!(html.contains("v2/models/"), "the form calls KServe v2");
    assert!(!html.contains("Survived"), "not the passenger page");
}

#[test]
#[ignore = "needs MNIST_ONNX_DIR and ORT_DYLIB_PATH (.ci/run sets them and runs ignored tests)"]
fn squeezenet_comes_and_goes_three_times_while_four_clients_predict_on_it_and_mnist() {
    use std::sync::Arc;

    use reqwest::Method;

    let dir = tempfile::tempdir().expect("temp dir");
    let store = dir.path().join("store");
    std::fs::create_dir(&store).expect("store");
    std::fs::copy(
        onnx_dir().join("squeezenet1_1.mar"),
        store.join("squeezenet1_1.mar"),
    )
    .expect("copy");
    let mut service = crate::helpers::service_settings();
    service.model_store = Some(store);
    let app = Arc::new(crate::helpers::spawn_managed_app(
        vec![crate::helpers::max_model()],
        service,
    ));
    let clients = crate::helpers::BusyClients::start(4, {
        let (app, seven, kitten) = (app.clone(), crate::helpers::sample(7), kitten());
        move |client| {
            if client % 2 == 0 {
                let response = app.torchserve_predict("mnist", seven.clone());
                assert_eq!(response.status(), 200);
                assert_eq!(response.text().expect("text"), "7");
            } else {
                // While registered it answers the top 5; otherwise a 404 naming it.
                let response = app.torchserve_predict("squeezenet1_1", kitten.clone());
                let status = response.status().as_u16();
                let body = response.text().expect("text");
                assert!(
                    (status == 200 && body.contains("pelican"))
                        || (status == 404 && body.contains("squeezenet1_1")),
                    "{status} {body}"
                );
            }
        }
    });
    for round in 0..3 {
        let registered = ok_json(app.manage(
            Method::POST,
            "/models?url=squeezenet1_1.mar&initial_workers=2&synchronous=true",
            None,
        ));
        assert_eq!(
            registered["status"],
            "Model \"squeezenet1_1\" Version: 1.0 registered with 2 initial workers",
            "round {round}"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
        let answer = ok_json(app.torchserve_predict("squeezenet1_1", kitten()));
        assert_eq!(answer.as_object().expect("top 5").len(), 5);
        let removed = ok_json(app.manage(Method::DELETE, "/models/squeezenet1_1", None));
        assert_eq!(removed["status"], "Model \"squeezenet1_1\" unregistered");
        let gone = app.torchserve_predict("squeezenet1_1", kitten());
        assert_eq!(gone.status(), 404);
    }
    clients.finish();
}

#[test]
#[ignore = "needs MNIST_ONNX_DIR and ORT_DYLIB_PATH (.ci/run sets them and runs ignored tests)"]
fn models_settings_in_config_toml_reach_the_model() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[[models]]\nname = \"net\"\npath = \"{}\"\n[models.settings]\ntop_k = 2\n[models.settings.image]\nmnist = true\nmean = [0.1307]\nstd = [0.3081]\n",
            onnx_dir().join("net.onnx").display()
        ),
    )
    .expect("write");
    let server = ServerProcess::serve(&["--config", config.to_str().expect("UTF-8")], &[]);
    let client = reqwest::blocking::Client::new();
    for digit in 0..10 {
        let answer: Value = client
            .put(format!("{}/predictions/net", server.url))
            .body(crate::helpers::sample(digit))
            .send()
            .expect("PUT")
            .json()
            .expect("JSON");
        let labels = answer.as_object().expect("the top 2");
        assert_eq!(labels.len(), 2, "{answer}");
        let best = labels
            .iter()
            .max_by(|a, b| a.1.as_f64().partial_cmp(&b.1.as_f64()).expect("numbers"))
            .expect("a label");
        assert_eq!(best.0, &digit.to_string(), "{answer}\n{}", server.log());
    }
}
