//! Fixtures: the upstream weights, the MNIST test set and PyTorch's reference outputs (all found
//! through environment variables that `.ci/run` sets), and `spawn_app()`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use max_mnist::configuration::Settings;
use max_mnist_api::Application;
use max_mnist_core::{MnistClassifier, IMAGE_PIXELS};

pub const BINARY: &str = env!("CARGO_BIN_EXE_max-mnist");
pub const UPSTREAM_SHA512: &str = "d49e3b79e8625288e59e642314694dd2c7f3b53bd4745af89674d0b01a4979cde856f1d8eaf7b7351f199a6371920be1cb2c44de5256459b0b4cdc4f89c68aae";
/// The directory holding `mnist-classifier.tar.gz`; without it the tests download from the bucket.
pub const ASSET_CACHE_VAR: &str = "MNIST_ASSET_CACHE";
/// The directory holding `t10k-images-idx3-ubyte.gz` and `t10k-labels-idx1-ubyte.gz`.
pub const DATA_DIR_VAR: &str = "MNIST_DATA_DIR";
/// The directory holding PyTorch's and Captum's outputs (`upstream-t10k.json`, …).
pub const REFERENCE_DIR_VAR: &str = "MNIST_REFERENCE_DIR";

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

/// The bucket the tests fetch the weights archive from.
pub fn asset_bucket() -> String {
    std::env::var(ASSET_CACHE_VAR).unwrap_or_else(|_| settings().assets.bucket)
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
        let output = Command::new(BINARY)
            .current_dir(&work)
            .args(["fetch-assets", "--bucket", &asset_bucket(), "--checksums"])
            .arg(project_root().join("sha512sums.txt"))
            .output()
            .expect("run max-mnist fetch-assets");
        assert!(
            output.status.success(),
            "cannot get the upstream weights from {}: {}\nSet {ASSET_CACHE_VAR} to a directory holding \
             mnist-classifier.tar.gz, or run the tests with internet access.",
            asset_bucket(),
            String::from_utf8_lossy(&output.stderr)
        );
        // A rename is atomic, so test binaries running at once never see half a file.
        std::fs::rename(work.join("assets").join("mnist-classifier.pt"), &weights).expect("move the weights");
        let _ = std::fs::remove_dir_all(&work);
        weights
    })
}

pub fn sha512_hex(path: &Path) -> Option<String> {
    max_mnist::checksums::sha512_file(path).ok()
}

pub fn upstream_model() -> Arc<MnistClassifier> {
    static MODEL: OnceLock<Arc<MnistClassifier>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            Arc::new(
                MnistClassifier::load(upstream_weights(), settings().image_limits())
                    .expect("upstream weights load"),
            )
        })
        .clone()
}

/// A directory named by `var`, or `None` (with a note) when it is unset outside CI. In CI a missing
/// variable fails the test: `.ci/run` must set it.
pub fn data_dir(var: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(dir) => Some(PathBuf::from(dir)),
        None if std::env::var_os("CI").is_some() => {
            panic!("{var} is not set: .ci/run must set it")
        }
        None => {
            eprintln!("note: {var} is not set, so the check that needs it is skipped");
            None
        }
    }
}

pub fn reference(name: &str) -> Option<serde_json::Value> {
    let path = data_dir(REFERENCE_DIR_VAR)?.join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
    Some(serde_json::from_str(&text).expect("reference JSON parses"))
}

/// A JSON array of numbers, as `f64`.
pub fn json_numbers(value: &serde_json::Value) -> Vec<f64> {
    value
        .as_array()
        .expect("an array of numbers")
        .iter()
        .map(|v| v.as_f64().expect("a number"))
        .collect()
}

/// PyTorch's prediction for every t10k image.
pub fn reference_predictions(reference: &serde_json::Value) -> Vec<u64> {
    json_numbers(&reference["predictions"])
        .into_iter()
        .map(|v| v as u64)
        .collect()
}

pub struct TestSet {
    pub images: Vec<[u8; IMAGE_PIXELS]>,
    pub labels: Vec<u8>,
}

/// The MNIST test set (t10k), from the IDX files.
pub fn mnist_test_set() -> Option<TestSet> {
    let dir = data_dir(DATA_DIR_VAR)?;
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
        .chunks_exact(IMAGE_PIXELS)
        .map(|chunk| chunk.try_into().expect("784 pixels"))
        .collect();
    Some(TestSet {
        images,
        labels: read("t10k-labels-idx1-ubyte.gz", 8),
    })
}

/// 28×28 8-bit grayscale PNG bytes.
pub fn png_of(pixels: &[u8; IMAGE_PIXELS]) -> Vec<u8> {
    let image = image::GrayImage::from_raw(28, 28, pixels.to_vec()).expect("28×28");
    let mut png = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("encode PNG");
    png
}

/// A loopback port nothing listens on (it was free a moment ago).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local address").port()
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::blocking::Client,
}

/// Starts the real server with the upstream weights on a free port, in a thread of its own.
pub fn spawn_app() -> TestApp {
    spawn_app_with(settings().service_settings())
}

/// [`spawn_app`] with other service settings.
pub fn spawn_app_with(service: max_mnist_api::ServiceSettings) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let port = listener.local_addr().expect("local address").port();
    let model = upstream_model();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let app = Application::build(listener, model, service).expect("build the app");
            app.run_until_stopped().await.expect("serve");
        })
    });
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        client: reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client"),
    }
}

impl TestApp {
    pub fn get(&self, path: &str) -> reqwest::blocking::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .expect("GET")
    }

    pub fn post_form(
        &self,
        path: &str,
        form: reqwest::blocking::multipart::Form,
    ) -> reqwest::blocking::Response {
        self.client
            .post(format!("{}{path}", self.address))
            .multipart(form)
            .send()
            .expect("POST multipart")
    }

    /// `POST /model/predict` with the image in field `file`.
    pub fn predict(&self, image: Vec<u8>) -> reqwest::blocking::Response {
        self.post_form("/model/predict", image_form("file", image))
    }

    pub fn assert_still_serving(&self) {
        let ping = self.get("/ping");
        assert_eq!(ping.status(), 200);
        let body: serde_json::Value = ping.json().expect("JSON");
        assert_eq!(body["status"], "Healthy");
    }
}

pub fn image_form(field: &str, image: Vec<u8>) -> reqwest::blocking::multipart::Form {
    reqwest::blocking::multipart::Form::new().part(
        field.to_owned(),
        reqwest::blocking::multipart::Part::bytes(image).file_name("digit.png"),
    )
}

/// The MAX error body: asserts the status and the JSON shape, returns the message.
pub fn max_error(response: reqwest::blocking::Response, status: u16) -> String {
    assert_eq!(response.status(), status);
    let body: serde_json::Value = response.json().expect("an error body is JSON");
    assert_eq!(body["status"], "error", "{body}");
    body["message"].as_str().expect("a message").to_owned()
}

/// KServe's error body (`{"error": …}`): asserts the status, returns the message.
pub fn kserve_error(response: reqwest::blocking::Response, status: u16) -> String {
    assert_eq!(response.status(), status);
    let body: serde_json::Value = response.json().expect("an error body is JSON");
    body["error"].as_str().expect("an error message").to_owned()
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

/// The real binary serving on a free loopback port, as a process of its own (so that its memory can
/// be read and signals sent). Its log goes to a file; it is killed when dropped.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub url: String,
    log_path: PathBuf,
}

impl ServerProcess {
    /// Starts `max-mnist serve` with the upstream weights and `extra_args`, and waits for `/ping`.
    pub fn start(extra_args: &[&str]) -> Self {
        let port = free_port().to_string();
        let logs = project_root().join("target").join("test-logs");
        std::fs::create_dir_all(&logs).expect("create target/test-logs");
        let log_path = logs.join(format!("server-{port}.log"));
        let log = std::fs::File::create(&log_path).expect("create the server log");
        let child = Command::new(BINARY)
            .current_dir(project_root())
            .args(["serve", "--host", "127.0.0.1", "--port", &port, "--weights"])
            .arg(upstream_weights())
            .args(extra_args)
            .env_remove("HOST")
            .env_remove("PORT")
            .env("RUST_LOG", "info")
            .stderr(log)
            .spawn()
            .expect("start the server");
        let server = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log_path,
        };
        let client = reqwest::blocking::Client::new();
        let started = std::time::Instant::now();
        while client.get(format!("{}/ping", server.url)).send().is_err() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "the server did not come up:\n{}",
                server.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        server
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
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
