//! The pages as a person uses them, in Debian's chromium driven headless by playwright-core:
//! `tests/browser/check_pages.mjs` draws a 7 on `/demo`, uploads samples through Swagger UI (a form,
//! and a raw body through the file picker of `/predictions/{model}`), and
//! fills in passengers on the Titanic model's `/demo?model=titanic`.

use std::process::Command;

use crate::helpers::{data_dir, project_root, titanic_dir, upstream_weights, ServerProcess};

/// A `node_modules` directory holding `playwright-core` (`.ci/run` installs it from npm).
const NODE_MODULES_VAR: &str = "MNIST_BROWSER_NODE_MODULES";

#[test]
#[ignore = "needs MNIST_BROWSER_NODE_MODULES (.ci/run sets it and runs ignored tests)"]
fn a_drawn_digit_a_swagger_ui_upload_and_a_passenger_form_are_answered() {
    let node_modules = data_dir(NODE_MODULES_VAR);
    let titanic = titanic_dir();
    // The MAX model first (it answers /demo and the MAX routes), the Titanic example beside it.
    let models = format!(
        "mnist={},titanic={}",
        upstream_weights().display(),
        titanic.join("titanic.mar").display()
    );
    let server = ServerProcess::serve(&["--models", &models], &[]);
    let screenshots = project_root().join("target/browser-screenshots");
    std::fs::create_dir_all(&screenshots).expect("screenshot directory");
    let output = Command::new("node")
        .arg(project_root().join("tests/browser/check_pages.mjs"))
        .arg(&server.url)
        .arg(project_root().join("samples"))
        .arg(&screenshots)
        .arg("titanic")
        .env("NODE_PATH", &node_modules)
        .output()
        .unwrap_or_else(|err| panic!("run node: {err}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("browser checks passed"),
        "{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.log()
    );
    for shot in ["demo.png", "swagger-ui.png", "titanic.png"] {
        let size = std::fs::metadata(screenshots.join(shot)).map_or(0, |m| m.len());
        assert!(size > 10_000, "{shot} is {size} bytes");
    }
}
