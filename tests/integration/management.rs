//! TorchServe's management API and KServe v2's repository extension on their own listener, and
//! the bearer tokens of both APIs, over real HTTP: models registered from the store while others
//! are served, every way out of the store refused without a network connection, 401s in each
//! protocol's shape, and the listener on loopback by default.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use max_mnist_api::{ServiceSettings, Token};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{
    kserve_error, max_error, max_model, ok_json, sample, service_settings, spawn_managed_app,
    titanic_dir, torchserve_error, upstream_weights, ServerProcess, TestApp,
};

/// A model store holding the MAX weights as `max.pt` (and Titanic's `.mar`, when the tests have
/// it), and the settings that register from it.
fn store_and_settings() -> (tempfile::TempDir, ServiceSettings) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = dir.path().join("store");
    std::fs::create_dir(&store).expect("store");
    std::fs::copy(upstream_weights(), store.join("max.pt")).expect("copy the weights");
    if let Some(titanic) = titanic_dir() {
        std::fs::copy(titanic.join("titanic.mar"), store.join("titanic.mar")).expect("copy");
    }
    let mut service = service_settings();
    service.model_store = Some(store);
    (dir, service)
}

fn managed_app(service: ServiceSettings) -> TestApp {
    spawn_managed_app(vec![max_model()], service)
}

fn served_names(app: &TestApp) -> Vec<String> {
    let list = ok_json(app.manage(Method::GET, "/models", None));
    list["models"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|model| model["modelName"].as_str().expect("a name").to_owned())
        .collect()
}

fn status_of(response: reqwest::blocking::Response) -> String {
    ok_json(response)["status"]
        .as_str()
        .expect("a status")
        .to_owned()
}

#[test]
fn titanic_comes_and_goes_five_times_while_four_clients_predict_on_mnist() {
    let Some(titanic) = titanic_dir() else { return };
    let (_store, service) = store_and_settings();
    let app = Arc::new(managed_app(service));
    let passengers =
        std::fs::read(titanic.join("test_data/titanic_survived.csv")).expect("test data");
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (app, stop, answered) = (app.clone(), stop.clone(), answered.clone());
            std::thread::spawn(move || {
                let seven = sample(7);
                while !stop.load(Ordering::Relaxed) {
                    let response = app.torchserve_predict("mnist", seven.clone());
                    assert_eq!(response.status(), 200);
                    assert_eq!(response.text().expect("text"), "7");
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    for round in 0..5 {
        let registered = app.manage(
            Method::POST,
            "/models?url=titanic.mar&batch_size=4&max_batch_delay=5000&initial_workers=3&synchronous=true",
            None,
        );
        assert_eq!(
            status_of(registered),
            "Model \"titanic\" Version: 1.0 registered with 3 initial workers",
            "round {round}"
        );
        assert_eq!(served_names(&app), ["mnist", "titanic"]);
        let described = ok_json(app.manage(Method::GET, "/models/titanic", None));
        assert_eq!(described[0]["modelUrl"], "titanic.mar");
        assert_eq!(described[0]["loadedAtStartup"], false);
        assert_eq!(described[0]["workers"][0]["status"], "READY");

        let labels = ok_json(
            app.client
                .put(app.url("/predictions/titanic"))
                .header("Content-Type", "text/csv")
                .body(passengers.clone())
                .send()
                .expect("PUT"),
        );
        let labels = labels.as_array().expect("a label per passenger");
        let rows = passengers.iter().filter(|&&byte| byte == b'\n').count() - 1;
        assert_eq!(labels.len(), rows);
        let survived = labels.iter().filter(|label| *label == "Survived").count();
        assert!(survived * 2 > rows, "{survived} of {rows}");
        let metadata = ok_json(app.get("/v2/models/titanic"));
        assert_eq!(metadata["inputs"][0]["shape"], json!([-1, 12]));

        let removed = app.manage(Method::DELETE, "/models/titanic/1.0", None);
        assert_eq!(status_of(removed), "Model \"titanic\" unregistered");
        assert_eq!(served_names(&app), ["mnist"]);
        let gone = app.torchserve_predict("titanic", passengers.clone());
        assert!(torchserve_error(gone, 404, "ModelNotFoundException").contains("`titanic`"));
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().expect("no client saw a failure");
    }
    assert!(
        answered.load(Ordering::Relaxed) > 20,
        "the clients kept predicting"
    );
    let metrics = app.metrics();
    assert!(
        !metrics.contains("max_mnist_model_info{name=\"titanic\""),
        "{metrics}"
    );
}

#[test]
fn a_request_in_flight_finishes_on_the_model_unregistered_under_it() {
    let (_store, service) = store_and_settings();
    let app = managed_app(service);
    status_of(app.manage(Method::POST, "/models?url=max.pt&model_name=max2", None));
    // The route resolves its model when the head arrives, then reads the body.
    let image = sample(3);
    let address = app.address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("connect");
    let head = format!(
        "PUT /predictions/max2 HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        image.len()
    );
    stream.write_all(head.as_bytes()).expect("head");
    stream.write_all(&image[..10]).expect("some of the body");
    std::thread::sleep(Duration::from_millis(300));
    status_of(app.manage(Method::DELETE, "/models/max2", None));
    assert_eq!(
        app.torchserve_predict("max2", image.clone()).status(),
        404,
        "new requests no longer find it"
    );
    stream.write_all(&image[10..]).expect("the rest");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with('3'), "{answer}");
}

/// A loopback HTTP server that counts the connections it is sent.
fn counting_server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = format!(
        "127.0.0.1:{}",
        listener.local_addr().expect("address").port()
    );
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (address, connections)
}

#[test]
fn every_way_out_of_the_store_is_refused_and_nothing_is_fetched() {
    let (store, service) = store_and_settings();
    let store_dir = store.path().join("store");
    std::fs::write(store.path().join("outside.pt"), b"not in the store").expect("write");
    std::os::unix::fs::symlink(store.path().join("outside.pt"), store_dir.join("link.pt"))
        .expect("symlink");
    std::fs::write(store_dir.join("broken.mar"), b"PK\x03\x04 not a zip").expect("write");
    let app = managed_app(service);
    let (server, connections) = counting_server();
    let absolute = store_dir.join("max.pt");
    let refused = [
        (format!("http://{server}/max.pt"), "`http:` URL"),
        (format!("https://{server}/max.pt"), "`https:` URL"),
        (format!("file://{}", absolute.display()), "`file:` URL"),
        (format!("ftp://{server}/max.pt"), "`ftp:` URL"),
        (absolute.display().to_string(), "absolute path"),
        ("../outside.pt".to_owned(), "`..`"),
        ("link.pt".to_owned(), "symlink that leads out"),
        ("missing.mar".to_owned(), "no such file"),
        ("broken.mar".to_owned(), "cannot register `broken.mar`"),
    ];
    for (url, why) in refused {
        let path = format!("/models?url={}&model_name=x", urlencode(&url));
        let message = torchserve_error(
            app.manage(Method::POST, &path, None),
            400,
            "BadRequestException",
        );
        assert!(message.contains(why), "{url}: {message}");
    }
    assert_eq!(connections.load(Ordering::SeqCst), 0, "no request left");
    assert_eq!(served_names(&app), ["mnist"], "nothing changed");

    let without_url = app.manage(Method::POST, "/models", None);
    assert!(torchserve_error(without_url, 400, "BadRequestException").contains("`url`"));
    let typo = app.manage(Method::POST, "/models?url=max.pt&modle_name=x", None);
    assert!(torchserve_error(typo, 400, "BadRequestException").contains("`modle_name`"));
    for name in ["", "a%2Fb", "..", "x%20y"] {
        let path = format!("/models?url=max.pt&model_name={name}");
        let bad_name = app.manage(Method::POST, &path, None);
        assert!(torchserve_error(bad_name, 400, "BadRequestException").contains("model name"));
    }
    let bad_number = app.manage(Method::POST, "/models?url=max.pt&initial_workers=-1", None);
    assert!(torchserve_error(bad_number, 400, "BadRequestException").contains("initial_workers"));

    let taken = app.manage(Method::POST, "/models?url=max.pt&model_name=mnist", None);
    assert!(torchserve_error(taken, 409, "ConflictStatusException").contains("already registered"));
    status_of(app.manage(Method::POST, "/models?url=max.pt", None));
    let twice = app.manage(Method::POST, "/models?url=max.pt", None);
    assert!(torchserve_error(twice, 409, "ConflictStatusException").contains("`max`"));
    assert_eq!(served_names(&app), ["mnist", "max"]);

    for unknown in [
        (Method::DELETE, "/models/nobody"),
        (Method::GET, "/models/nobody"),
        (Method::PUT, "/models/nobody?min_worker=2"),
        (Method::DELETE, "/models/max/9.9"),
    ] {
        let message = torchserve_error(
            app.manage(unknown.0.clone(), unknown.1, None),
            404,
            "ModelNotFoundException",
        );
        assert!(message.contains("not served") || message.contains("no version"));
    }
    let scaled = app.manage(
        Method::PUT,
        "/models/max?min_worker=3&synchronous=true",
        None,
    );
    assert_eq!(status_of(scaled), "Workers scaled to 2 for model: max");
    let versioned = app.manage(
        Method::PUT,
        "/models/max/1.0?min_worker=1&synchronous=true",
        None,
    );
    assert_eq!(
        status_of(versioned),
        "Workers scaled to 2 for model: max, version: 1.0"
    );
    let later = app.manage(Method::PUT, "/models/max?min_worker=3", None);
    assert_eq!(later.status(), 202);
    let later: serde_json::Value = later.json().expect("JSON");
    assert_eq!(later["status"], "Processing worker updates...");
    let inverted = app.manage(Method::PUT, "/models/max?min_worker=3&max_worker=1", None);
    assert!(torchserve_error(inverted, 400, "BadRequestException").contains("max_worker"));
    assert_eq!(
        ok_json(app.manage(Method::GET, "/models/max/all", None))[0]["modelName"],
        "max"
    );
    let page = ok_json(app.manage(Method::GET, "/models?limit=1", None));
    assert_eq!(page["nextPageToken"], "1");
    let next = ok_json(app.manage(Method::GET, "/models?limit=1&next_page_token=1", None));
    assert_eq!(next["models"][0]["modelName"], "max");
    app.assert_still_serving();
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

#[test]
fn without_a_model_store_nothing_can_be_registered() {
    let app = managed_app(service_settings());
    let message = torchserve_error(
        app.manage(Method::POST, "/models?url=max.pt", None),
        400,
        "BadRequestException",
    );
    assert!(message.contains("--model-store"), "{message}");
}

#[test]
fn kserve_v2_repository_loads_and_unloads_from_the_store() {
    let (_store, service) = store_and_settings();
    let app = managed_app(service);
    let index = |app: &TestApp| {
        let base = app.management.as_deref().expect("managed");
        ok_json(
            app.client
                .post(format!("{base}/v2/repository/index"))
                .json(&json!({}))
                .send()
                .expect("index"),
        )
    };
    let before = index(&app);
    assert!(before
        .as_array()
        .expect("a list")
        .iter()
        .any(|entry| entry["name"] == "max" && entry["state"] == "UNAVAILABLE"));
    assert_eq!(
        before[0],
        json!({"name": "mnist", "version": "1", "state": "READY", "reason": ""})
    );

    let loaded = app.manage(Method::POST, "/v2/repository/models/max/load", None);
    assert_eq!(loaded.status(), 200);
    assert_eq!(ok_json(app.get("/v2/models/max/ready"))["ready"], true);
    assert!(index(&app)
        .as_array()
        .expect("a list")
        .iter()
        .any(|entry| entry["name"] == "max" && entry["state"] == "READY"));
    let again = app.manage(Method::POST, "/v2/repository/models/max/load", None);
    assert_eq!(again.status(), 200, "already loaded: nothing to do");

    let unloaded = app.manage(Method::POST, "/v2/repository/models/max/unload", None);
    assert_eq!(unloaded.status(), 200);
    assert_eq!(app.get("/v2/models/max/ready").status(), 404);
    let missing = app.manage(Method::POST, "/v2/repository/models/nothing/load", None);
    assert!(kserve_error(missing, 404).contains("`nothing.mar`"));
    let unknown = app.manage(Method::POST, "/v2/repository/models/nothing/unload", None);
    assert!(kserve_error(unknown, 404).contains("`nothing`"));
    app.assert_still_serving();
}

fn with_tokens() -> (tempfile::TempDir, ServiceSettings) {
    let (store, mut service) = store_and_settings();
    service.auth.inference = Token::new("inference-secret");
    service.auth.management = Token::new("management-secret");
    (store, service)
}

#[test]
fn tokens_are_asked_for_in_each_protocols_shape_and_health_stays_open() {
    let (_store, service) = with_tokens();
    let app = managed_app(service);
    let predict = |token: Option<&str>| {
        let request = app
            .client
            .put(app.url("/predictions/mnist"))
            .body(sample(7));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
        .send()
        .expect("PUT")
    };
    let missing = predict(None);
    assert_eq!(
        missing
            .headers()
            .get("www-authenticate")
            .map(|v| v.as_bytes()),
        Some(&b"Bearer"[..])
    );
    assert!(torchserve_error(missing, 401, "InvalidKeyException").contains("Authorization: Bearer"));
    assert!(
        torchserve_error(predict(Some("guess")), 401, "InvalidKeyException")
            .contains("not the inference token")
    );
    assert!(torchserve_error(
        predict(Some("management-secret")),
        401,
        "InvalidKeyException"
    )
    .contains("inference token"));
    let allowed = predict(Some("inference-secret"));
    assert_eq!(allowed.status(), 200);
    assert_eq!(allowed.text().expect("text"), "7");

    assert!(kserve_error(app.get("/v2/models/mnist"), 401).contains("inference token"));
    assert!(kserve_error(app.get("/v1/models"), 401).contains("inference token"));
    assert!(max_error(app.get("/model/metadata"), 401).contains("inference token"));
    assert_eq!(app.get("/models").status(), 401);
    for open in [
        "/ping",
        "/v2/health/live",
        "/v2/health/ready",
        "/metrics",
        "/",
        "/openapi.json",
    ] {
        assert_eq!(app.get(open).status(), 200, "{open}");
    }
    let document = ok_json(app.get("/openapi.json"));
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(document["security"], json!([{"bearer": []}]));

    for token in [None, Some("guess"), Some("inference-secret")] {
        let refused = app.manage(Method::GET, "/models", token);
        assert!(torchserve_error(refused, 401, "InvalidKeyException").contains("management token"));
    }
    let refused = app.manage(Method::POST, "/models?url=max.pt", Some("inference-secret"));
    assert_eq!(refused.status(), 401);
    assert_eq!(
        app.manage(Method::GET, "/models/max", Some("management-secret"))
            .status(),
        404
    );
    let index = app.manage(Method::POST, "/v2/repository/index", None);
    assert!(kserve_error(index, 401).contains("management token"));
    let registered = app.manage(
        Method::POST,
        "/models?url=max.pt",
        Some("management-secret"),
    );
    assert_eq!(registered.status(), 200);
    assert_eq!(
        app.manage(Method::GET, "/models", Some("management-secret"))
            .status(),
        200
    );
}

#[test]
fn the_binary_keeps_management_on_loopback_and_tokens_out_of_its_log_and_help() {
    let store = tempfile::tempdir().expect("temp dir");
    std::fs::copy(upstream_weights(), store.path().join("max.pt")).expect("copy");
    let secrets = [
        ("INFERENCE_TOKEN", "inf-7c1e2b-secret"),
        ("MANAGEMENT_TOKEN", "mgmt-93af04-secret"),
        ("MODEL_STORE", store.path().to_str().expect("UTF-8")),
    ];
    let server = ServerProcess::serve(
        &[
            "--weights",
            upstream_weights().to_str().expect("UTF-8"),
            "--management-port",
            "0",
        ],
        // The inference API listens on every interface; the management API must not follow.
        &[&secrets[..], &[("HOST", "0.0.0.0")]].concat(),
    );
    let management = server
        .management_url()
        .expect("the management API is logged");
    let port: u16 = management
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .expect("a port");
    assert_eq!(listening_addresses(port), ["127.0.0.1"], "{management}");

    let client = reqwest::blocking::Client::new();
    for token in ["inf-7c1e2b-secret", "mgmt-93af04-secret", "wrong-5d2f"] {
        for url in [
            format!("{}/models", server.url),
            format!("{management}/models"),
        ] {
            client.get(&url).bearer_auth(token).send().expect("GET");
        }
    }
    let registered = client
        .post(format!("{management}/models?url=max.pt"))
        .bearer_auth("mgmt-93af04-secret")
        .send()
        .expect("POST");
    assert_eq!(registered.status(), 200);
    std::thread::sleep(Duration::from_millis(100));
    let log = server.log();
    assert!(log.contains("registered model `max`"), "{log}");
    for secret in ["inf-7c1e2b-secret", "mgmt-93af04-secret", "wrong-5d2f"] {
        assert!(!log.contains(secret), "the log shows a token:\n{log}");
    }

    let help = std::process::Command::new(crate::helpers::BINARY)
        .args(["serve", "--help"])
        .envs(secrets)
        .output()
        .expect("--help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--management-token"), "{help}");
    assert!(!help.contains("secret"), "--help shows a token:\n{help}");
}

/// The local addresses listening on TCP `port`, from the kernel's socket tables.
fn listening_addresses(port: u16) -> Vec<String> {
    let mut addresses = Vec::new();
    for (table, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (fields.get(1), fields.get(3)) else {
                continue;
            };
            let Some((address, hex_port)) = local.split_once(':') else {
                continue;
            };
            if *state != "0A" || u16::from_str_radix(hex_port, 16).ok() != Some(port) {
                continue;
            }
            addresses.push(if v6 {
                format!("[{address}]")
            } else {
                let value = u32::from_str_radix(address, 16).expect("hex address");
                std::net::Ipv4Addr::from(value.swap_bytes()).to_string()
            });
        }
    }
    addresses
}

#[test]
fn the_socket_table_reader_sees_a_wildcard_listener_too() {
    let listener = TcpListener::bind("0.0.0.0:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    assert_eq!(listening_addresses(port), ["0.0.0.0"]);
}

#[test]
fn a_wrong_token_file_or_an_empty_token_stops_the_start() {
    let output = std::process::Command::new(crate::helpers::BINARY)
        .args([
            "serve",
            "--port",
            "0",
            "--token-file",
            "/nonexistent/key_file.json",
        ])
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read the token file"));
    let output = std::process::Command::new(crate::helpers::BINARY)
        .args(["serve", "--port", "0", "--inference-token", " "])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("inference token is empty"),
        "{stderr}"
    );
}
