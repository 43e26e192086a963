//! The `max-mnist` binary itself.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{
    closed_port, project_root, sample_path, serve_file, spawn_app, upstream_weights, ServerProcess,
    ASSET_CACHE_VAR, BINARY, UPSTREAM_SHA512,
};

const ARCHIVE: &str = "mnist-classifier.tar.gz";

fn run_in(dir: &Path, args: &[&str]) -> Output {
    command_in(dir, args).output().expect("run max-mnist")
}

/// The binary in `dir`, without the variables of the environment the tests run in that change it.
fn command_in(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .current_dir(dir)
        .args(args)
        .env_remove("MAX_MNIST_WEIGHTS")
        .env_remove("MAX_MNIST_CONFIG")
        .env_remove(ASSET_CACHE_VAR)
        .env_remove("PORT")
        .env_remove("HOST");
    command
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A tar.gz holding `mnist-classifier.pt` with the given contents.
fn archive_of(weights: &[u8]) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    let mut header = tar::Header::new_gnu();
    header.set_size(weights.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "mnist-classifier.pt", weights)
        .expect("append");
    tar.into_inner()
        .and_then(|gz| gz.finish())
        .expect("finish the archive")
}

fn fetch_from(bucket: &str, dir: &Path) -> Output {
    let checksums = project_root().join("sha512sums.txt");
    run_in(
        dir,
        &[
            "fetch-assets",
            "--bucket",
            bucket,
            "--checksums",
            checksums.to_str().expect("utf-8"),
        ],
    )
}

#[test]
fn fetch_assets_downloads_unpacks_and_verifies() {
    let weights = std::fs::read(upstream_weights()).expect("weights");
    let bucket = serve_file(ARCHIVE, archive_of(&weights));
    let dir = tempfile::tempdir().expect("temp dir");
    let output = fetch_from(&bucket, dir.path());
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("assets/mnist-classifier.pt: OK"));
    let fetched = dir.path().join("assets").join("mnist-classifier.pt");
    assert_eq!(
        crate::helpers::sha512_hex(&fetched).as_deref(),
        Some(UPSTREAM_SHA512)
    );
    assert!(
        !dir.path().join("assets").join(ARCHIVE).exists(),
        "the archive is removed once unpacked"
    );

    let verified = run_in(
        dir.path(),
        &[
            "verify-assets",
            "--checksums",
            project_root()
                .join("sha512sums.txt")
                .to_str()
                .expect("utf-8"),
        ],
    );
    assert!(verified.status.success(), "{}", stderr(&verified));
}

#[test]
fn a_tampered_archive_is_deleted_and_fails() {
    let mut weights = std::fs::read(upstream_weights()).expect("weights");
    let last = weights.len() - 1;
    weights[last] ^= 0x01;
    let bucket = serve_file(ARCHIVE, archive_of(&weights));
    let dir = tempfile::tempdir().expect("temp dir");
    let output = fetch_from(&bucket, dir.path());
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("FAILED") && message.contains("were deleted"),
        "{message}"
    );
    let assets = dir.path().join("assets");
    assert!(!assets.join("mnist-classifier.pt").exists());
    assert!(!assets.join(ARCHIVE).exists());
}

#[test]
fn a_missing_archive_fails_naming_the_status() {
    let bucket = serve_file("something-else.tar.gz", Vec::new());
    let dir = tempfile::tempdir().expect("temp dir");
    let output = fetch_from(&bucket, dir.path());
    assert!(!output.status.success());
    assert!(stderr(&output).contains("404"), "{}", stderr(&output));
    assert!(!dir.path().join("assets").join(ARCHIVE).exists());
}

/// A directory holding `archive` as the weights archive, as `MNIST_ASSET_CACHE` names one.
fn cache_holding(archive: Vec<u8>) -> tempfile::TempDir {
    let cache = tempfile::tempdir().expect("temp dir");
    std::fs::write(cache.path().join(ARCHIVE), archive).expect("write the archive");
    cache
}

/// `fetch-assets` in `dir` with `MNIST_ASSET_CACHE=cache`, and `config.toml`'s bucket replaced by
/// `bucket`.
fn fetch_with_cache(dir: &Path, cache: &Path, bucket: &str, flags: &[&str]) -> Output {
    let config = dir.join("settings.toml");
    std::fs::write(&config, format!("[assets]\nbucket = \"{bucket}\"\n")).expect("write settings");
    let checksums = project_root().join("sha512sums.txt");
    let mut args = vec![
        "fetch-assets",
        "--config",
        config.to_str().expect("utf-8"),
        "--checksums",
        checksums.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(flags);
    command_in(dir, &args)
        .env(ASSET_CACHE_VAR, cache)
        .output()
        .expect("run max-mnist")
}

#[test]
fn fetch_assets_takes_the_archive_from_mnist_asset_cache_and_still_verifies_it() {
    let weights = std::fs::read(upstream_weights()).expect("weights");
    // Nothing listens at the configured bucket: what is fetched comes from the cache.
    let unreachable = format!("http://127.0.0.1:{}", closed_port());

    let cache = cache_holding(archive_of(&weights));
    let dir = tempfile::tempdir().expect("temp dir");
    let output = fetch_with_cache(dir.path(), cache.path(), &unreachable, &[]);
    let message = stderr(&output);
    assert!(output.status.success(), "{message}");
    assert!(
        message.contains("from the asset cache") && message.contains("MNIST_ASSET_CACHE"),
        "{message}"
    );
    assert!(
        message.contains("assets/mnist-classifier.pt: OK"),
        "{message}"
    );
    let fetched = dir.path().join("assets").join("mnist-classifier.pt");
    assert_eq!(
        crate::helpers::sha512_hex(&fetched).as_deref(),
        Some(UPSTREAM_SHA512)
    );
    assert!(!dir.path().join("assets").join(ARCHIVE).exists());
    assert!(
        cache.path().join(ARCHIVE).is_file(),
        "the cache keeps its archive"
    );

    let mut tampered = weights;
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    let cache = cache_holding(archive_of(&tampered));
    let dir = tempfile::tempdir().expect("temp dir");
    let output = fetch_with_cache(dir.path(), cache.path(), &unreachable, &[]);
    let message = stderr(&output);
    assert!(!output.status.success(), "{message}");
    assert!(
        message.contains("FAILED")
            && message.contains("were deleted")
            && message.contains(cache.path().to_str().expect("utf-8")),
        "the refusal names the cache it read: {message}"
    );
    assert!(!dir
        .path()
        .join("assets")
        .join("mnist-classifier.pt")
        .exists());
    assert!(cache.path().join(ARCHIVE).is_file());
}

#[test]
fn a_cache_without_the_archive_falls_back_to_the_bucket_and_bucket_given_comes_first() {
    let weights = std::fs::read(upstream_weights()).expect("weights");
    let bucket = serve_file(ARCHIVE, archive_of(&weights));

    let empty = tempfile::tempdir().expect("temp dir");
    let dir = tempfile::tempdir().expect("temp dir");
    let output = fetch_with_cache(dir.path(), empty.path(), &bucket, &[]);
    let message = stderr(&output);
    assert!(output.status.success(), "{message}");
    assert!(
        message.contains(&format!("holds no {ARCHIVE}: downloading it from {bucket}")),
        "{message}"
    );
    assert!(
        message.contains("assets/mnist-classifier.pt: OK"),
        "{message}"
    );

    // The cache's archive is damaged, so only a download from --bucket passes the checksums.
    let mut tampered = weights;
    tampered[0] ^= 0x01;
    let cache = cache_holding(archive_of(&tampered));
    let unreachable = format!("http://127.0.0.1:{}", closed_port());
    let dir = tempfile::tempdir().expect("temp dir");
    let output = fetch_with_cache(
        dir.path(),
        cache.path(),
        &unreachable,
        &["--bucket", &bucket],
    );
    let message = stderr(&output);
    assert!(output.status.success(), "{message}");
    assert!(message.contains("is not used"), "{message}");
    assert_eq!(
        crate::helpers::sha512_hex(&dir.path().join("assets").join("mnist-classifier.pt"))
            .as_deref(),
        Some(UPSTREAM_SHA512)
    );
}

#[test]
fn verify_assets_fails_on_a_changed_file() {
    let checksums = project_root().join("sha512sums.txt");
    let checksums = checksums.to_str().expect("utf-8");
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("assets")).expect("mkdir");
    let weights = dir.path().join("assets").join("mnist-classifier.pt");
    std::fs::write(weights, b"not the weights").expect("write");
    let output = run_in(dir.path(), &["verify-assets", "--checksums", checksums]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("assets/mnist-classifier.pt: FAILED"),
        "{message}"
    );
    // --skip-missing still checks a file that is present…
    let output = run_in(
        dir.path(),
        &["verify-assets", "--skip-missing", "--checksums", checksums],
    );
    assert!(!output.status.success());

    // …and skips one that is absent, which plain verify-assets refuses.
    let empty = tempfile::tempdir().expect("temp dir");
    let output = run_in(
        empty.path(),
        &["verify-assets", "--skip-missing", "--checksums", checksums],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("skipped, not present"),
        "{}",
        stderr(&output)
    );
    let output = run_in(empty.path(), &["verify-assets", "--checksums", checksums]);
    assert!(!output.status.success());
}

#[test]
fn serve_without_weights_exits_naming_fetch_assets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = run_in(dir.path(), &["serve", "--port", "0"]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("max-mnist fetch-assets")
            && message.contains("assets/mnist-classifier.pt"),
        "{message}"
    );

    std::fs::create_dir(dir.path().join("assets")).expect("mkdir");
    std::fs::write(
        dir.path().join("assets").join("mnist-classifier.pt"),
        b"<html>404</html>",
    )
    .expect("write");
    let output = run_in(dir.path(), &["--port", "0"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("max-mnist fetch-assets"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn predict_prints_one_json_line_per_file_and_fails_on_an_unreadable_one() {
    let weights = upstream_weights().to_str().expect("utf-8").to_owned();
    let mut args = vec![
        "predict".to_owned(),
        "--weights".to_owned(),
        weights.clone(),
    ];
    args.extend((0..10).map(|d| sample_path(d).to_string_lossy().into_owned()));
    let output = run_in(
        project_root(),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 10);
    for (digit, line) in lines.iter().enumerate() {
        assert_eq!(line["prediction"], digit);
        assert!(line["file"]
            .as_str()
            .expect("file")
            .ends_with(&format!("{digit}.png")));
        assert!(line["probability"].as_f64().expect("probability") > 0.9);
    }

    let sample = sample_path(7).to_string_lossy().into_owned();
    let output = run_in(
        project_root(),
        &[
            "predict",
            "--weights",
            &weights,
            "/nonexistent.png",
            "Cargo.toml",
            &sample,
        ],
    );
    assert!(!output.status.success());
    let lines: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0]["error"]
        .as_str()
        .expect("error")
        .contains("cannot read"));
    assert!(lines[1]["error"]
        .as_str()
        .expect("error")
        .contains("not an image"));
    assert_eq!(lines[2]["prediction"], 7);
}

#[test]
fn healthcheck_follows_the_server() {
    let app = spawn_app();
    let port = app.address.rsplit(':').next().expect("port").to_owned();
    let output = run_in(project_root(), &["healthcheck", "--port", &port]);
    assert!(output.status.success(), "{}", stderr(&output));

    let closed_port = closed_port().to_string();
    let output = run_in(project_root(), &["healthcheck", "--port", &closed_port]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("does not answer"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn the_server_answers_and_stops_cleanly_on_sigterm() {
    let mut server = ServerProcess::start(&[]);
    let form = crate::helpers::image_form("file", crate::helpers::sample(9));
    let body: Value = reqwest::blocking::Client::new()
        .post(format!("{}/model/predict", server.url))
        .multipart(form)
        .send()
        .expect("POST")
        .json()
        .expect("JSON");
    assert_eq!(body["predictions"][0]["prediction"], 9);

    let killed = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = server.wait_for_exit(Duration::from_secs(10));
    assert!(status.success(), "exit status {status:?}\n{}", server.log());
}
