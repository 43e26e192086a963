//! Fixtures — the upstream weights, TorchServe's example model, the MNIST test set and PyTorch's
//! reference outputs (all found through environment variables that `.ci/run` sets) — and
//! [`TestApp`], the real server on port 0 with one method per endpoint.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use base64::Engine;
use max_mnist::configuration::Settings;
use max_mnist_api::{Application, Listeners, LoadedModel, ServiceSettings};
use max_mnist_core::architectures::my_convnet::MyConvNetModel;
use max_mnist_core::image_input::MNIST_PIXELS as PIXELS;
use max_mnist_core::{Model, ModelIdentity, ModelSource};
use reqwest::blocking::multipart::Form;
use reqwest::blocking::Response;
use serde_json::Value;

pub const BINARY: &str = env!("CARGO_BIN_EXE_max-mnist");
pub const UPSTREAM_SHA512: &str = "d49e3b79e8625288e59e642314694dd2c7f3b53bd4745af89674d0b01a4979cde856f1d8eaf7b7351f199a6371920be1cb2c44de5256459b0b4cdc4f89c68aae";
/// The directory holding `mnist-classifier.tar.gz`; without it the tests download from the bucket.
pub const ASSET_CACHE_VAR: &str = "MNIST_ASSET_CACHE";
/// The directory holding `t10k-images-idx3-ubyte.gz` and `t10k-labels-idx1-ubyte.gz`.
pub const DATA_DIR_VAR: &str = "MNIST_DATA_DIR";
/// The directory holding PyTorch's and Captum's outputs (`upstream-t10k.json`, …).
pub const REFERENCE_DIR_VAR: &str = "MNIST_REFERENCE_DIR";
/// The directory of TorchServe's MNIST example: `mnist.mar`, `mnist_cnn.pt`, `mnist_cnn_legacy.pt`,
/// `reference-t10k.json`, `captum-ig-t10k.json`.
pub const TORCHSERVE_DIR_VAR: &str = "MNIST_TORCHSERVE_DIR";
/// The directory of the TorchServe + Captum Titanic example: `titanic.mar`, `titanic_state_dict.pt`,
/// `titanic3.csv`, `test_data/*.csv`, PyTorch's and Captum's `reference.json`.
pub const TITANIC_DIR_VAR: &str = "MNIST_TITANIC_DIR";
/// The directory of the ONNX exports: `net.onnx`, `my_convnet.onnx`, `titanic.onnx`,
/// `squeezenet1_1.onnx` and `.mar`, `mobilenet_v3_small.onnx`, `kitten.jpg`, ONNX Runtime's
/// `reference.json`. Its tests also need ONNX Runtime's library (`ORT_DYLIB_PATH`).
pub const ONNX_DIR_VAR: &str = "MNIST_ONNX_DIR";

pub fn project_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn settings() -> Settings {
    Settings::load(Some(&project_root().join("config.toml"))).expect("config.toml loads")
}

pub fn sample_path(digit: u8) -> PathBuf {
    project_root().join("samples").join(format!("{digit}.png"))
}

pub fn sample(digit: u8) -> Vec<u8> {
    std::fs::read(sample_path(digit)).expect("the committed samples exist")
}

pub fn base64_of(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn sample_base64(digit: u8) -> String {
    base64_of(&sample(digit))
}

/// A sample's 784 gray pixels.
pub fn sample_pixels(digit: u8) -> Vec<u8> {
    image::load_from_memory(&sample(digit))
        .expect("a sample")
        .to_luma8()
        .into_raw()
}

/// An image in a file format.
pub fn encode(image: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut bytes), format)
        .expect("encode");
    bytes
}

/// The upstream `mnist-classifier.pt`, fetched once into `target/test-assets/` by `max-mnist fetch-assets`.
pub fn upstream_weights() -> &'static Path {
    static WEIGHTS: OnceLock<PathBuf> = OnceLock::new();
    WEIGHTS.get_or_init(|| {
        let cache = project_root().join("target").join("test-assets");
        let weights = cache.join("mnist-classifier.pt");
        if sha512_hex(&weights).as_deref() == Some(UPSTREAM_SHA512) {
            return weights;
        }
        let work = cache.join(format!("fetch-{}", std::process::id()));
        std::fs::create_dir_all(&work).expect("create target/test-assets");
        // fetch-assets reads ASSET_CACHE_VAR itself, as a user's shell would pass it.
        let output = Command::new(BINARY)
            .current_dir(&work)
            .args(["fetch-assets", "--checksums"])
            .arg(project_root().join("sha512sums.txt"))
            .output()
            .expect("run max-mnist fetch-assets");
        assert!(
            output.status.success(),
            "cannot get the upstream weights: {}\nSet {ASSET_CACHE_VAR} to a directory holding \
             mnist-classifier.tar.gz, or run the tests with internet access.",
            String::from_utf8_lossy(&output.stderr)
        );
        // A rename is atomic, so test binaries running at once never see half a file.
        std::fs::rename(work.join("assets").join("mnist-classifier.pt"), &weights)
            .expect("move the weights");
        let _ = std::fs::remove_dir_all(&work);
        weights
    })
}

pub fn sha512_hex(path: &Path) -> Option<String> {
    max_mnist::checksums::sha512_file(path).ok()
}

/// The MAX model on the upstream weights, as `serve` names it by default (`mnist`, version 1).
pub fn upstream_model() -> Arc<MyConvNetModel> {
    static MODEL: OnceLock<Arc<MyConvNetModel>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let bytes = std::fs::read(upstream_weights()).expect("read the upstream weights");
            let tensors = max_mnist_core::weights::read_tensors(&bytes).expect("a checkpoint");
            let (architecture, state_dict) =
                max_mnist_core::recognise(tensors).expect("a known network");
            assert_eq!(architecture.network().name, "MyConvNet");
            let settings = settings();
            let identity = ModelIdentity {
                name: settings.model.name.clone(),
                version: settings.model.version.clone(),
                labels: None,
            };
            Arc::new(
                MyConvNetModel::new(&state_dict, identity, settings.load_limits().image)
                    .expect("the network builds"),
            )
        })
        .clone()
}

/// The MAX model, ready to serve.
pub fn max_model() -> LoadedModel {
    LoadedModel {
        model: upstream_model(),
        url: "mnist-classifier.pt".into(),
        loaded_at_startup: true,
    }
}

/// TorchServe's example directory, or `None` (with a note) outside CI.
pub fn torchserve_dir() -> PathBuf {
    data_dir(TORCHSERVE_DIR_VAR)
}

/// Clients that keep sending requests, each from a thread of its own, until [`Self::finish`]:
/// `request(client)` sends one and asserts its answer.
pub struct BusyClients {
    stop: Arc<std::sync::atomic::AtomicBool>,
    answered: Arc<std::sync::atomic::AtomicUsize>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl BusyClients {
    pub fn start(count: usize, request: impl Fn(usize) + Send + Sync + 'static) -> Self {
        use std::sync::atomic::Ordering;
        let request = Arc::new(request);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads = (0..count)
            .map(|client| {
                let (request, stop, answered) = (request.clone(), stop.clone(), answered.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        request(client);
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        Self {
            stop,
            answered,
            threads,
        }
    }

    /// Stops them: a client that saw a wrong answer fails the test, and so do clients that were
    /// not kept answering.
    pub fn finish(self) {
        use std::sync::atomic::Ordering;
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            thread.join().expect("no client saw a failure");
        }
        assert!(
            self.answered.load(Ordering::Relaxed) > 20,
            "the clients kept predicting"
        );
    }
}

/// A zip of `entries` (name, bytes), deflated: a `.mar` or a zip-format checkpoint.
pub fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        writer.start_file(*name, options).expect("entry");
        std::io::Write::write_all(&mut writer, data).expect("write");
    }
    writer.finish().expect("zip").into_inner()
}

/// Loads a model as `serve` does.
pub fn load_model(path: &Path, name: Option<&str>) -> Arc<dyn Model> {
    let source = ModelSource {
        name: name.map(str::to_owned),
        ..ModelSource::file(path)
    };
    max_mnist_core::load(&source, &settings().load_limits())
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// TorchServe's example `mnist.mar`, loaded once.
pub fn torchserve_model() -> Arc<dyn Model> {
    static MODEL: OnceLock<Arc<dyn Model>> = OnceLock::new();
    MODEL
        .get_or_init(|| load_model(&torchserve_dir().join("mnist.mar"), None))
        .clone()
}

/// The Titanic example's directory, or `None` (with a note) outside CI.
pub fn titanic_dir() -> PathBuf {
    data_dir(TITANIC_DIR_VAR)
}

/// The Titanic example's `titanic.mar`, loaded once.
pub fn titanic_model() -> Arc<dyn Model> {
    static MODEL: OnceLock<Arc<dyn Model>> = OnceLock::new();
    MODEL
        .get_or_init(|| load_model(&titanic_dir().join("titanic.mar"), None))
        .clone()
}

/// The ONNX exports' directory.
pub fn onnx_dir() -> PathBuf {
    data_dir(ONNX_DIR_VAR)
}

/// ONNX Runtime's outputs on the exports (`reference.json`).
pub fn onnx_reference() -> Value {
    let path = onnx_dir().join("reference.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
    serde_json::from_str(&text).expect("reference JSON parses")
}

/// An ONNX export (or `.mar`) of the ONNX directory loaded with `settings`.
pub fn onnx_model(file: &str, model_settings: max_mnist_core::ModelSettings) -> Arc<dyn Model> {
    let path = onnx_dir().join(file);
    let source = ModelSource {
        settings: model_settings,
        ..ModelSource::file(&path)
    };
    max_mnist_core::load(&source, &settings().load_limits())
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// PyTorch's and Captum's outputs for the Titanic test files.
pub fn titanic_reference() -> Value {
    let path = titanic_dir().join("reference.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
    serde_json::from_str(&text).expect("reference JSON parses")
}

/// A JSON file of TorchServe's example directory.
pub fn torchserve_reference(name: &str) -> Value {
    let path = torchserve_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
    serde_json::from_str(&text).expect("reference JSON parses")
}

/// A directory (or file) named by `var`. The tests that need one are `#[ignore]`d, so that
/// `cargo test` without the data lists them as ignored; `.ci/run` sets every variable and runs them
/// all (`--include-ignored`), and an unset one fails the test, naming it.
/// The directory `var` names when it is set: for fixtures to which the data only adds.
pub fn data_dir_if_set(var: &str) -> Option<PathBuf> {
    std::env::var_os(var).map(PathBuf::from)
}

pub fn data_dir(var: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(dir) => PathBuf::from(dir),
        None => {
            panic!("{var} is not set: set it (.ci/run shows how), or run without --include-ignored")
        }
    }
}

pub fn reference(name: &str) -> Value {
    let path = data_dir(REFERENCE_DIR_VAR).join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
    serde_json::from_str(&text).expect("reference JSON parses")
}

/// Checks an explanation against one item of a Captum reference file (`index`, `target`,
/// `n_steps`, `attributions` [28][28], `convergence_delta`): every attribution within 10⁻³ of the
/// largest. Prints the figures; returns Captum's convergence delta.
pub fn assert_matches_captum(explanation: &max_mnist_core::Explanation, item: &Value) -> f64 {
    let expected: Vec<f64> = item["attributions"]
        .as_array()
        .expect("rows")
        .iter()
        .flat_map(json_numbers)
        .collect();
    let largest = expected.iter().fold(0f64, |m, v| m.max(v.abs()));
    let worst = explanation
        .attributions
        .iter()
        .zip(&expected)
        .map(|(a, e)| (f64::from(*a) - e).abs())
        .fold(0f64, f64::max);
    let captum_delta = item["convergence_delta"].as_f64().expect("delta");
    let what = format!(
        "image {}, target {}, {} steps",
        item["index"], item["target"], item["n_steps"]
    );
    println!(
        "{what}: worst {worst:.2e} of {largest:.3}, delta {} vs Captum {captum_delta}",
        explanation.convergence_delta
    );
    assert_eq!(explanation.attributions.len(), expected.len(), "{what}");
    assert!(
        worst <= 1e-3 * largest,
        "{what}: {worst} > 1e-3 × {largest}"
    );
    captum_delta
}

/// The image index, target and step count of a Captum reference item.
pub fn captum_item(item: &Value) -> (usize, usize, usize) {
    let field = |name: &str| item[name].as_u64().expect("a whole number") as usize;
    (field("index"), field("target"), field("n_steps"))
}

/// A JSON array of numbers, as `f64`.
pub fn json_numbers(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .expect("an array of numbers")
        .iter()
        .map(|v| v.as_f64().expect("a number"))
        .collect()
}

/// A JSON array nested to any depth: its shape (each level's length, read along the first
/// elements) and its numbers in order, as `f64`.
pub fn nested_numbers(value: &Value) -> (Vec<usize>, Vec<f64>) {
    fn flatten(value: &Value, out: &mut Vec<f64>) {
        match value {
            Value::Array(items) => items.iter().for_each(|item| flatten(item, out)),
            other => out.push(other.as_f64().expect("a number")),
        }
    }
    let mut shape = Vec::new();
    let mut level = value;
    while let Value::Array(items) = level {
        shape.push(items.len());
        match items.first() {
            Some(first) => level = first,
            None => break,
        }
    }
    let mut numbers = Vec::new();
    flatten(value, &mut numbers);
    (shape, numbers)
}

/// PyTorch's prediction for every t10k image.
pub fn reference_predictions(reference: &Value) -> Vec<u64> {
    json_numbers(&reference["predictions"])
        .into_iter()
        .map(|v| v as u64)
        .collect()
}

pub struct TestSet {
    pub images: Vec<[u8; PIXELS]>,
    pub labels: Vec<u8>,
}

/// The MNIST test set (t10k), from the IDX files.
pub fn mnist_test_set() -> TestSet {
    let dir = data_dir(DATA_DIR_VAR);
    let read = |name: &str, header: usize| -> Vec<u8> {
        let file =
            std::fs::File::open(dir.join(name)).unwrap_or_else(|err| panic!("open {name}: {err}"));
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(file)
            .read_to_end(&mut bytes)
            .expect("gunzip");
        bytes.split_off(header)
    };
    let images = read("t10k-images-idx3-ubyte.gz", 16)
        .chunks_exact(PIXELS)
        .map(|chunk| chunk.try_into().expect("784 pixels"))
        .collect();
    TestSet {
        images,
        labels: read("t10k-labels-idx1-ubyte.gz", 8),
    }
}

/// 28×28 8-bit grayscale PNG bytes.
pub fn png_of(pixels: &[u8; PIXELS]) -> Vec<u8> {
    let image = image::GrayImage::from_raw(28, 28, pixels.to_vec()).expect("28×28");
    encode(
        &image::DynamicImage::ImageLuma8(image),
        image::ImageFormat::Png,
    )
}

/// A loopback port nothing listens on, for checks that a client reports a server that is not
/// there (servers bind port 0 and report the port they got).
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local address").port()
}

/// The service settings `serve` uses for the MAX model.
pub fn service_settings() -> ServiceSettings {
    settings().service_settings(Path::new(""))
}

/// Titanic first (the MAX routes' model), the MAX model beside it; `input_dir` when given.
pub fn titanic_first_app(input_dir: Option<&Path>) -> TestApp {
    let titanic = titanic_model();
    let mut service = service_settings();
    service.input_dir = input_dir.map(Path::to_path_buf);
    spawn_app_with_models(
        vec![
            LoadedModel {
                model: titanic,
                url: "titanic.mar".into(),
                loaded_at_startup: true,
            },
            LoadedModel {
                model: load_model(upstream_weights(), Some("max")),
                url: "mnist-classifier.pt".into(),
                loaded_at_startup: true,
            },
        ],
        service,
    )
}

/// The real server on a port of its own, in a thread, with a client that does not follow redirects.
pub struct TestApp {
    pub address: String,
    /// The management API's address, when it is on.
    pub management: Option<String>,
    pub client: reqwest::blocking::Client,
}

/// The server with the MAX model, as `max-mnist serve` runs by default.
pub fn spawn_app() -> TestApp {
    spawn_app_with(service_settings())
}

/// [`spawn_app`] with other service settings.
pub fn spawn_app_with(service: ServiceSettings) -> TestApp {
    spawn(vec![max_model()], service, false)
}

/// The server with `models` (the first answers the MAX routes), as `serve --models` runs it.
pub fn spawn_app_serving(models: Vec<LoadedModel>) -> TestApp {
    spawn_app_with_models(models, service_settings())
}

/// [`spawn_app_serving`] with other service settings.
pub fn spawn_app_with_models(models: Vec<LoadedModel>, service: ServiceSettings) -> TestApp {
    spawn(models, service, false)
}

/// [`spawn_app_with_models`] with the management API on a port of its own too.
pub fn spawn_managed_app(models: Vec<LoadedModel>, service: ServiceSettings) -> TestApp {
    spawn(models, service, true)
}

fn spawn(models: Vec<LoadedModel>, service: ServiceSettings, managed: bool) -> TestApp {
    let listeners = Listeners {
        inference: Some(TcpListener::bind("127.0.0.1:0").expect("bind port 0")),
        management: managed.then(|| TcpListener::bind("127.0.0.1:0").expect("bind port 0")),
        ..Listeners::default()
    };
    let (ready, started) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let app = Application::build(listeners, models, service).expect("build the app");
            let _ = ready.send((app.port(), app.management_port()));
            app.run_until_stopped().await.expect("serve");
        })
    });
    let (port, management) = started.recv().expect("the server starts");
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        management: management.map(|port| format!("http://127.0.0.1:{port}")),
        client: reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client"),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().expect("GET")
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .expect("POST JSON")
    }

    pub fn post_form(&self, path: &str, form: Form) -> Response {
        self.client
            .post(self.url(path))
            .multipart(form)
            .send()
            .expect("POST multipart")
    }

    /// A raw body with POST, as `curl --data-binary @file` sends it.
    pub fn post_bytes(&self, path: &str, body: Vec<u8>) -> Response {
        self.client
            .post(self.url(path))
            .body(body)
            .send()
            .expect("POST")
    }

    /// `POST /model/predict` with the image in field `file`.
    pub fn predict(&self, image: Vec<u8>) -> Response {
        self.post_form("/model/predict", image_form("file", image))
    }

    /// `POST /model/explain` with the image in field `file` and `query` (`?steps=15`, or empty).
    pub fn explain(&self, image: Vec<u8>, query: &str) -> Response {
        self.post_form(&format!("/model/explain{query}"), image_form("file", image))
    }

    /// `PUT /predictions/{model}` with the raw image, as `curl -T` sends it.
    pub fn torchserve_predict(&self, model: &str, image: Vec<u8>) -> Response {
        self.client
            .put(self.url(&format!("/predictions/{model}")))
            .body(image)
            .send()
            .expect("PUT")
    }

    /// `POST /explanations/{model}` with the raw image.
    pub fn torchserve_explain(&self, model: &str, image: Vec<u8>) -> Response {
        self.post_bytes(&format!("/explanations/{model}"), image)
    }

    /// KServe v1 `POST /v1/models/{model}:predict`.
    pub fn v1_predict(&self, model: &str, body: &Value) -> Response {
        self.post_json(&format!("/v1/models/{model}:predict"), body)
    }

    /// KServe v1 `POST /v1/models/{model}:explain`.
    pub fn v1_explain(&self, model: &str, body: &Value) -> Response {
        self.post_json(&format!("/v1/models/{model}:explain"), body)
    }

    /// KServe v2 `POST /v2/models/{model}/infer`.
    pub fn v2_infer(&self, model: &str, body: &Value) -> Response {
        self.post_json(&format!("/v2/models/{model}/infer"), body)
    }

    /// KServe v2 `POST /v2/models/{model}/explain`.
    pub fn v2_explain(&self, model: &str, body: &Value) -> Response {
        self.post_json(&format!("/v2/models/{model}/explain"), body)
    }

    /// `PUT path` with a raw body, as `curl -T` sends a file.
    pub fn put_bytes(&self, path: &str, body: Vec<u8>) -> Response {
        self.client
            .put(self.url(path))
            .body(body)
            .send()
            .expect("PUT")
    }

    /// The Prometheus text of `GET /metrics`.
    pub fn metrics(&self) -> String {
        let response = self.get("/metrics");
        assert_eq!(response.status(), 200);
        response.text().expect("text")
    }

    /// A request to the management API: `method` `path`, with `token` as a bearer token.
    pub fn manage(&self, method: reqwest::Method, path: &str, token: Option<&str>) -> Response {
        let base = self
            .management
            .as_deref()
            .expect("the management API is on");
        let request = self.client.request(method, format!("{base}{path}"));
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        request.send().expect("a management request")
    }

    pub fn assert_still_serving(&self) {
        let ping = self.get("/ping");
        assert_eq!(ping.status(), 200);
        let body: Value = ping.json().expect("JSON");
        assert_eq!(body["status"], "Healthy");
    }
}

/// The picture of a 200 `image/png` answer, decoded.
pub fn png_body(response: Response) -> image::DynamicImage {
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("image/png")
    );
    image::load_from_memory(&response.bytes().expect("body")).expect("a PNG")
}

pub fn image_form(field: &str, image: Vec<u8>) -> Form {
    Form::new().part(
        field.to_owned(),
        reqwest::blocking::multipart::Part::bytes(image).file_name("digit.png"),
    )
}

/// A 200's JSON body.
pub fn ok_json(response: Response) -> Value {
    assert_eq!(response.status(), 200);
    response.json().expect("JSON")
}

/// The MAX error body: asserts the status and the JSON shape, returns the message.
pub fn max_error(response: Response, status: u16) -> String {
    assert_eq!(response.status(), status);
    let body: Value = response.json().expect("an error body is JSON");
    assert_eq!(body["status"], "error", "{body}");
    body["message"].as_str().expect("a message").to_owned()
}

/// KServe's error body (`{"error": …}`): asserts the status, returns the message.
pub fn kserve_error(response: Response, status: u16) -> String {
    assert_eq!(response.status(), status);
    let body: Value = response.json().expect("an error body is JSON");
    body["error"].as_str().expect("an error message").to_owned()
}

/// TorchServe's error body: asserts status, `code` and `type`; returns the message.
pub fn torchserve_error(response: Response, status: u16, kind: &str) -> String {
    assert_eq!(response.status(), status);
    let body: Value = response.json().expect("an error body is JSON");
    assert_eq!(body["code"], status, "{body}");
    assert_eq!(body["type"], kind, "{body}");
    body["message"].as_str().expect("a message").to_owned()
}

/// A loopback HTTP server that answers `GET /…/{name}` with `body` and anything else with 404.
pub fn serve_file(name: &str, body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    let name = format!("/{name}");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            answer(stream, &name, &body);
        }
    });
    address
}

fn answer(mut stream: TcpStream, name: &str, body: &[u8]) {
    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
    let request = String::from_utf8_lossy(&request);
    let path = request.split_whitespace().nth(1).unwrap_or("");
    let (status, body) = if path.ends_with(name) {
        ("200 OK", body)
    } else {
        ("404 Not Found", &b"not found"[..])
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body));
}

/// The settings' environment variables, which a server started by a test never inherits.
const SETTINGS_VARIABLES: &[&str] = &[
    "HOST",
    "PORT",
    "MODELS",
    "MODEL_STORE",
    "MAX_MNIST_WEIGHTS",
    "MANAGEMENT_PORT",
    "MANAGEMENT_HOST",
    "METRICS_ADDRESS",
    "INFERENCE_TOKEN",
    "MANAGEMENT_TOKEN",
    "TOKEN_FILE",
    "TS_CONFIG_FILE",
];

/// The first word after `marker` in a server's log.
fn logged_address(log: &str, marker: &str) -> Option<String> {
    log.lines()
        .find_map(|line| line.split(marker).nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
}

/// The real binary serving on loopback port 0, as a process of its own (so that its memory can be
/// read and signals sent). Its log goes to a file, from which the bound port is read; it is killed
/// when dropped.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub url: String,
    log_path: PathBuf,
}

impl ServerProcess {
    /// Starts `max-mnist serve` with the upstream weights and `extra_args`, and waits until it
    /// listens.
    pub fn start(extra_args: &[&str]) -> Self {
        let weights = upstream_weights().to_str().expect("UTF-8");
        Self::serve(&[&["--weights", weights], extra_args].concat(), &[])
    }

    /// Starts `max-mnist serve ARGS` on loopback port 0 with the environment variables `envs`
    /// (and none of the settings' variables from the tests' own environment).
    pub fn serve(args: &[&str], envs: &[(&str, &str)]) -> Self {
        let command = [&["serve", "--host", "127.0.0.1", "--port", "0"], args].concat();
        Self::run(project_root(), &command, envs)
    }

    /// Runs `max-mnist ARGS` (any command that serves) in `dir` with the environment variables
    /// `envs`, and waits until it listens.
    pub fn run(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Self {
        static SERVERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let logs = project_root().join("target").join("test-logs");
        std::fs::create_dir_all(&logs).expect("create target/test-logs");
        let number = SERVERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log_path = logs.join(format!("server-{}-{number}.log", std::process::id()));
        let log = std::fs::File::create(&log_path).expect("create the server log");
        let mut command = Command::new(BINARY);
        command.current_dir(dir).args(args);
        for variable in SETTINGS_VARIABLES {
            command.env_remove(variable);
        }
        let mut child = command
            .envs(envs.iter().copied())
            .env("RUST_LOG", "info")
            .stderr(log)
            .spawn()
            .expect("start the server");
        let started = std::time::Instant::now();
        let url = loop {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            if let Some(url) = logged_address(&log, "serving on ") {
                break url;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the server exited with {status}:\n{log}");
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "the server did not come up:\n{log}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        Self {
            child,
            url,
            log_path,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Its exit status, within `limit` (a failed test otherwise).
    pub fn wait_for_exit(&mut self, limit: std::time::Duration) -> std::process::ExitStatus {
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                started.elapsed() < limit,
                "the server did not stop within {limit:?}\n{}",
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// The management API's address, from the log (logged before the server is up).
    pub fn management_url(&self) -> Option<String> {
        logged_address(&self.log(), "management API on ")
    }

    /// The metrics listener's `/metrics` URL, from the log.
    pub fn metrics_url(&self) -> Option<String> {
        logged_address(&self.log(), "metrics on ")
    }

    /// The process's peak resident set size (VmHWM), in bytes.
    pub fn peak_rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/PID/status");
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("a VmHWM line");
        kib * 1024
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
