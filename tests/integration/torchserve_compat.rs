//! TorchServe's users switching without changing a line: its `config.properties`
//! (`frontend/server/src/main/java/org/pytorch/serve/util/ConfigManager.java`), its command line
//! (`ts/arg_parser.py`, `ts/model_server.py`), an empty start, KServe's storage layout, and its
//! metric names (`ts/configs/metrics.yaml`), against the real binary.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{data_dir, project_root, sample, torchserve_dir, ServerProcess, BINARY};

/// The KServe guide's request, TorchServe's `kubernetes/kserve/kf_request_json/v1/mnist.json`
/// (a 2).
fn guide_request() -> Value {
    let text =
        std::fs::read_to_string(project_root().join("samples/requests/kserve-guide-v1-mnist.json"))
            .expect("samples/requests/kserve-guide-v1-mnist.json");
    serde_json::from_str(&text).expect("JSON")
}

/// The guide's v1 predict on `base`: `{"predictions":[2]}`.
fn assert_the_guides_prediction(http: &reqwest::blocking::Client, base: &str) {
    let predicted: Value = http
        .post(format!("{base}/v1/models/mnist:predict"))
        .json(&guide_request())
        .send()
        .expect("predict")
        .json()
        .expect("JSON");
    assert_eq!(predicted, serde_json::json!({"predictions": [2]}));
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// A model store holding TorchServe's `mnist.mar`, in `dir/name`.
fn store_with_mnist(dir: &Path, name: &str, torchserve: &Path) -> std::path::PathBuf {
    let store = dir.join(name);
    std::fs::create_dir_all(&store).expect("store");
    std::fs::copy(torchserve.join("mnist.mar"), store.join("mnist.mar")).expect("copy mnist.mar");
    store
}

/// `max-mnist torchserve ARGS` in `dir`: its exit status and what it printed. Its output goes
/// to files, since a server it starts in the background inherits them and holds pipes open.
fn torchserve(dir: &Path, args: &[&str]) -> (std::process::ExitStatus, String, String) {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let stdout_path = dir.join(format!("torchserve-{run}.out"));
    let stderr_path = dir.join(format!("torchserve-{run}.err"));
    let status = Command::new(BINARY)
        .current_dir(dir)
        .arg("torchserve")
        .args(args)
        .env("TMPDIR", dir)
        .env_remove("TS_CONFIG_FILE")
        .env_remove("MODEL_STORE")
        .env_remove("MODELS")
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .status()
        .expect("run max-mnist torchserve");
    let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
    (status, read(&stdout_path), read(&stderr_path))
}

/// `torchserve --foreground` in `dir` with a `config.properties` of `settings` after three
/// loopback addresses of its own (port 0), and `args`.
fn serve_torchserve(dir: &Path, settings: &str, args: &[&str]) -> ServerProcess {
    std::fs::write(
        dir.join("config.properties"),
        format!("inference_address=http://127.0.0.1:0\nmanagement_address=http://127.0.0.2:0\nmetrics_address=http://127.0.0.3:0\n{settings}"),
    )
    .expect("write config.properties");
    let command = [
        &[
            "torchserve",
            "--foreground",
            "--ts-config",
            "config.properties",
        ],
        args,
    ]
    .concat();
    ServerProcess::run(dir, &command, &[("TMPDIR", dir.to_str().expect("UTF-8"))])
}

/// `torchserve --stop` when the test ends, however it ends.
struct StopOnDrop<'a>(&'a Path);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        let _ = torchserve(self.0, &["--stop"]);
    }
}

/// The guide's steps, word for word but for the program's name: its `config.properties`
/// (`kubernetes/kserve/developer_guide.md`, with the addresses of the copy), its start
/// command, the register `curl`, a v1 predict and explain, the model's health on the management
/// port, TorchServe's metrics on its default metrics port, and `--stop`.
#[test]
#[ignore = "needs MNIST_TORCHSERVE_DIR (.ci/run sets it and runs ignored tests)"]
fn the_kserve_guide_runs_with_only_the_program_name_changed() {
    let torchserve_data = torchserve_dir();
    let dir = tempfile::tempdir().expect("temp dir");
    store_with_mnist(dir.path(), "model_store", &torchserve_data);
    std::fs::write(
        dir.path().join("config.properties"),
        "inference_address=http://127.0.0.1:8085\nmanagement_address=http://127.0.0.1:8081\nnumber_of_netty_threads=4\njob_queue_size=10\nenable_envvars_config=true\nmodel_store=model_store\n",
    )
    .expect("write config.properties");
    let started = torchserve(
        dir.path(),
        &[
            "--start",
            "--model-store",
            "model_store",
            "--ncs",
            "--ts-config",
            "config.properties",
        ],
    );
    let _stop = StopOnDrop(dir.path());
    assert!(started.0.success(), "{}{}", started.1, started.2);
    let http = client();
    let ping: Value = http
        .get("http://127.0.0.1:8085/ping")
        .send()
        .expect("ping")
        .json()
        .expect("JSON");
    assert_eq!(ping["status"], "Healthy");
    // An empty start: nothing served until the guide registers its archive.
    let models: Value = http
        .get("http://127.0.0.1:8081/models")
        .send()
        .expect("list")
        .json()
        .expect("JSON");
    assert_eq!(models["models"], serde_json::json!([]));
    let registered = http
        .post("http://127.0.0.1:8081/models?model_name=mnist&url=mnist.mar&initial_workers=1&synchronous=true")
        .send()
        .expect("register");
    assert_eq!(registered.status(), 200, "{:?}", registered.text());

    assert_the_guides_prediction(&http, "http://127.0.0.1:8085");
    let explained: Value = http
        .post("http://127.0.0.1:8085/v1/models/mnist:explain")
        .json(&guide_request())
        .send()
        .expect("explain")
        .json()
        .expect("JSON");
    let rows = &explained["explanations"][0][0];
    assert_eq!(explained["explanations"].as_array().map(Vec::len), Some(1));
    assert_eq!(rows.as_array().map(Vec::len), Some(28), "{explained}");
    assert_eq!(rows[0].as_array().map(Vec::len), Some(28));

    let health: Value = http
        .get("http://127.0.0.1:8081/v1/models/mnist")
        .send()
        .expect("health")
        .json()
        .expect("JSON");
    assert_eq!(health, serde_json::json!({"name": "mnist", "ready": true}));
    let metrics = http
        .get("http://127.0.0.1:8082/metrics")
        .send()
        .expect("metrics")
        .text()
        .expect("text");
    assert!(
        metrics.contains("ts_inference_requests_total{hostname=")
            && metrics.contains("model_name=\"mnist\",model_version=\"default\"} 2"),
        "{metrics}"
    );

    let (_, stopped, _) = torchserve(dir.path(), &["--stop"]);
    assert!(stopped.contains("TorchServe has stopped."), "{stopped}");
    assert!(
        TcpStream::connect("127.0.0.1:8085").is_err(),
        "still listening"
    );
    let (_, again, _) = torchserve(dir.path(), &["--stop"]);
    assert!(
        again.contains("TorchServe is not currently running."),
        "{again}"
    );
}

/// KServe's TorchServe runtime layout: `/mnt/models/config/config.properties` naming the store and
/// a `model_snapshot`, with `inference_address == management_address` (one listener serves both,
/// as `ModelServer.startRESTserver` does when the connectors are equal).
#[test]
#[ignore = "needs MNIST_TORCHSERVE_DIR (.ci/run sets it and runs ignored tests)"]
fn kserves_snapshot_layout_serves_both_apis_on_one_listener() {
    let torchserve_data = torchserve_dir();
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store_with_mnist(dir.path(), "model-store", &torchserve_data);
    std::fs::create_dir_all(dir.path().join("config")).expect("config dir");
    std::fs::write(
        dir.path().join("config/config.properties"),
        format!(
            "inference_address=http://127.0.0.1:0\nmanagement_address=http://127.0.0.1:0\nmetrics_address=http://127.0.0.2:0\ngrpc_inference_port=7070\ngrpc_management_port=7071\nenable_metrics_api=true\nmetrics_format=prometheus\nNUM_WORKERS=1\nnumber_of_netty_threads=4\njob_queue_size=10\nenable_envvars_config=true\ninstall_py_dep_per_model=true\nmodel_store={}\nmodel_snapshot={{\"name\":\"startup.cfg\",\"modelCount\":1,\"models\":{{\"mnist\":{{\"1.0\":{{\"defaultVersion\":true,\"marName\":\"mnist.mar\",\"minWorkers\":1,\"maxWorkers\":5,\"batchSize\":1,\"maxBatchDelay\":5000,\"responseTimeout\":120}}}}}}}}\n",
            store.display()
        ),
    )
    .expect("write config.properties");
    let server = ServerProcess::run(
        dir.path(),
        &[
            "torchserve",
            "--start",
            "--foreground",
            "--ts-config",
            "config/config.properties",
        ],
        &[
            ("TMPDIR", dir.path().to_str().expect("UTF-8")),
            ("TS_SERVICE_ENVELOPE", "kservev2"),
        ],
    );
    let http = client();
    assert_the_guides_prediction(&http, &server.url);
    let models: Value = http
        .get(format!("{}/models", server.url))
        .send()
        .expect("list")
        .json()
        .expect("JSON");
    assert_eq!(models["models"][0]["modelName"], "mnist", "{models}");
    assert_eq!(
        server.management_url().as_deref(),
        Some(server.url.as_str())
    );
    let log = server.log();
    assert!(
        log.contains("accepted and ignored")
            && log.contains("NUM_WORKERS")
            && log.contains("install_py_dep_per_model"),
        "{log}"
    );
    let metrics = server.metrics_url().expect("a metrics listener");
    assert!(metrics.starts_with("http://127.0.0.2:"), "{metrics}");
    let text = http
        .get(&metrics)
        .send()
        .expect("scrape")
        .text()
        .expect("text");
    assert!(text.contains("ts_inference_requests_total"), "{text}");
}

/// TorchServe counts `ts_inference_requests_total` once per inference request
/// (`InferenceRequestHandler.handleRequest`) and `Requests2XX` once per response
/// (`NettyUtils.sendHttpResponse`); read here by the Python `prometheus_client` parser.
#[test]
#[ignore = "needs MNIST_CLIENT_PYTHON (.ci/run sets it and runs ignored tests)"]
fn torchserve_metrics_count_requests_as_its_frontend_does() {
    let (python, torchserve_data) = (data_dir("MNIST_CLIENT_PYTHON"), torchserve_dir());
    let models = format!("mnist={}", torchserve_data.join("mnist.mar").display());
    let server = ServerProcess::serve(
        &["--models", &models, "--metrics-address", "127.0.0.1:0"],
        &[],
    );
    let scrape = server.metrics_url().expect("the metrics listener");
    let read = |url: &str| -> Value {
        let output = Command::new(&python)
            .args([
                "-c",
                "import json, sys, urllib.request\nfrom prometheus_client.parser import text_string_to_metric_families\ntext = urllib.request.urlopen(sys.argv[1]).read().decode()\nout = {}\nfor family in text_string_to_metric_families(text):\n    for s in family.samples:\n        key = s.name + json.dumps(s.labels, sort_keys=True)\n        out[key] = s.value\nprint(json.dumps(out))\n",
                url,
            ])
            .output()
            .expect("run python");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("JSON")
    };
    let sum = |samples: &Value, name: &str, model: Option<&str>| -> f64 {
        samples
            .as_object()
            .expect("object")
            .iter()
            .filter(|(key, _)| {
                key.starts_with(&format!("{name}{{"))
                    && model
                        .is_none_or(|model| key.contains(&format!("\"model_name\": \"{model}\"")))
            })
            .filter_map(|(_, value)| value.as_f64())
            .sum()
    };
    let before = read(&scrape);
    let http = client();
    let n = 5;
    for _ in 0..n {
        let response = http
            .put(format!("{}/predictions/mnist", server.url))
            .body(sample(3))
            .send()
            .expect("predict");
        assert_eq!(response.status(), 200);
    }
    let after = read(&scrape);
    let delta =
        |name: &str, model: Option<&str>| sum(&after, name, model) - sum(&before, name, model);
    assert_eq!(
        delta("ts_inference_requests_total", Some("mnist")),
        f64::from(n)
    );
    // The parser names a counter's samples `…_total`, as it does TorchServe's. The first scrape's
    // own answer is a 2XX response too.
    assert_eq!(delta("Requests2XX_total", None), f64::from(n + 1));
    assert_eq!(delta("Requests4XX_total", None), 0.0);
    assert!(delta("ts_inference_latency_microseconds_total", Some("mnist")) > 0.0);
    assert!(
        after
            .as_object()
            .expect("object")
            .keys()
            .any(|key| key.starts_with("Requests2XX_total{")
                && key.contains("\"Level\": \"Host\"")
                && key.contains("\"Hostname\"")),
        "{after}"
    );
    let main_port = http
        .get(format!("{}/metrics", server.url))
        .send()
        .expect("scrape")
        .text()
        .expect("text");
    assert!(
        main_port.contains("ts_queue_latency_microseconds")
            && main_port.contains("max_mnist_requests_total")
    );
}

/// `--ncs` with no models starts empty: `/ping` is healthy, `/models` empty, and every
/// protocol's prediction route a 404 in its own shape that says how to register a model.
#[test]
fn an_empty_start_serves_nothing_and_says_how_to_register() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = serve_torchserve(
        dir.path(),
        "load_models=\n",
        &["--ncs", "--model-store", "."],
    );
    let http = client();
    let ping: Value = http
        .get(format!("{}/ping", server.url))
        .send()
        .expect("ping")
        .json()
        .expect("JSON");
    assert_eq!(ping["status"], "Healthy");
    let management = server.management_url().expect("management");
    let models: Value = http
        .get(format!("{management}/models"))
        .send()
        .expect("models")
        .json()
        .expect("JSON");
    assert_eq!(models["models"], serde_json::json!([]));
    for (method, path, shape) in [
        ("PUT", "/predictions/mnist", "code"),
        ("POST", "/v1/models/mnist:predict", "error"),
        ("POST", "/v2/models/mnist/infer", "error"),
        ("POST", "/model/predict", "message"),
    ] {
        let response = http
            .request(
                method.parse().expect("method"),
                format!("{}{path}", server.url),
            )
            .body(sample(3))
            .send()
            .expect("request");
        assert_eq!(response.status(), 404, "{path}");
        let body: Value = response.json().expect("JSON");
        let message = body[shape]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| body["message"].to_string());
        assert!(message.contains("POST /models"), "{path}: {body}");
    }

    // `serve --models ""` is an empty start too; `serve` with nothing named still serves MAX's model.
    let empty = ServerProcess::serve(&["--models", ""], &[]);
    let listed: Value = http
        .get(format!("{}/models", empty.url))
        .send()
        .expect("models")
        .json()
        .expect("JSON");
    assert_eq!(listed["models"], serde_json::json!([]));
}

/// A malformed value stops the start naming the key and its line (`ConfigManager` would throw at
/// its first use); an unknown key is a warning naming it, and the server starts.
#[test]
fn config_properties_mistakes_are_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("bad.properties"),
        "inference_address=http://127.0.0.1:0\n# a comment\njob_queue_size=ten\n",
    )
    .expect("write");
    let (status, _, stderr) = torchserve(
        dir.path(),
        &["--foreground", "--ts-config", "bad.properties"],
    );
    assert!(!status.success());
    assert!(
        stderr.contains("bad.properties line 3: `job_queue_size` is `ten`"),
        "{stderr}"
    );
    std::fs::write(
        dir.path().join("typo.properties"),
        "inference_address=http://127.0.0.1:0\nmanagement_address=http://127.0.0.2:0\nmetrics_address=http://127.0.0.3:0\ninference_adress=http://0.0.0.0:1\n",
    )
    .expect("write");
    let server = ServerProcess::run(
        dir.path(),
        &[
            "torchserve",
            "--foreground",
            "--ts-config",
            "typo.properties",
        ],
        &[("TMPDIR", dir.path().to_str().expect("UTF-8"))],
    );
    assert!(
        server
            .log()
            .contains("line 4: `inference_adress` is not a TorchServe setting"),
        "{}",
        server.log()
    );
}

/// `job_queue_size` bounds the requests waiting for a model's runners; beyond it TorchServe
/// answers 503 `ServiceUnavailableException` (`ModelManager.addJob` returning false).
#[test]
#[ignore = "needs MNIST_TORCHSERVE_DIR (.ci/run sets it and runs ignored tests)"]
fn a_full_job_queue_is_a_503_and_the_server_keeps_serving() {
    let torchserve_data = torchserve_dir();
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("config.properties"),
        "job_queue_size=1\ndefault_workers_per_model=1\n",
    )
    .expect("write");
    let models = format!("mnist={}", torchserve_data.join("mnist.mar").display());
    let config = dir.path().join("config.properties");
    let server = ServerProcess::serve(
        &[
            "--models",
            &models,
            "--ts-config",
            config.to_str().expect("UTF-8"),
        ],
        &[],
    );
    let url = format!("{}/explanations/mnist", server.url);
    // Bursts of 16 at once, until one overlaps the runner's work (the first almost always does).
    let burst = || -> Vec<(u16, Value)> {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..16)
                .map(|_| {
                    scope.spawn(|| {
                        let response = client().post(&url).body(sample(3)).send().expect("explain");
                        let status = response.status().as_u16();
                        (status, response.json().unwrap_or(Value::Null))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        })
    };
    let mut statuses = burst();
    for _ in 0..10 {
        if statuses.iter().any(|(status, _)| *status == 503) {
            break;
        }
        statuses = burst();
    }
    let refused: Vec<_> = statuses
        .iter()
        .filter(|(status, _)| *status == 503)
        .collect();
    assert!(!refused.is_empty(), "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|(status, _)| *status == 200 || *status == 503),
        "{statuses:?}"
    );
    let (_, body) = refused[0];
    assert_eq!(body["type"], "ServiceUnavailableException", "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap_or_default()
        .contains("job_queue_size"));
    let again = client().post(&url).body(sample(3)).send().expect("explain");
    assert_eq!(again.status(), 200);
}

/// Ctrl-C (SIGINT) drains requests in flight, as SIGTERM does.
#[test]
fn sigint_drains_requests_in_flight() {
    let mut server = ServerProcess::start(&[]);
    let address = server.url.trim_start_matches("http://").to_owned();
    let image = sample(7);
    let boundary = "drain-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"7.png\"\r\nContent-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&image);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut stream = TcpStream::connect(&address).expect("connect");
    write!(
        stream,
        "POST /model/predict HTTP/1.1\r\nHost: {address}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .expect("head");
    let half = body.len() / 2;
    stream.write_all(&body[..half]).expect("first half");
    stream.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(200));
    let signalled = Command::new("kill")
        .args(["-INT", &server.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(signalled.success());
    std::thread::sleep(Duration::from_millis(300));
    stream.write_all(&body[half..]).expect("second half");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("the answer");
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "{answer}\n{}",
        server.log()
    );
    assert!(answer.contains("\"prediction\":7"), "{answer}");
    let status = server.wait_for_exit(Duration::from_secs(10));
    assert!(status.success(), "{status:?}\n{}", server.log());
}

/// `enable_model_api=false`: TorchServe's management API then refuses registering and
/// unregistering with a 405 `MethodNotAllowedException` (`ManagementRequestHandler.handleRequest`),
/// while listing, describing and scaling still answer.
#[test]
fn enable_model_api_false_refuses_registration_with_a_405() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = serve_torchserve(
        dir.path(),
        "enable_model_api=false\n",
        &["--model-store", "."],
    );
    let management = server.management_url().expect("management");
    let http = client();
    let refused = http
        .post(format!("{management}/models?url=mnist.mar"))
        .send()
        .expect("register");
    assert_eq!(refused.status(), 405);
    let body: Value = refused.json().expect("JSON");
    assert_eq!(body["type"], "MethodNotAllowedException", "{body}");
    let deleted = http
        .delete(format!("{management}/models/mnist"))
        .send()
        .expect("unregister");
    assert_eq!(deleted.status(), 405);
    let listed = http
        .get(format!("{management}/models"))
        .send()
        .expect("list");
    assert_eq!(listed.status(), 200);
}
