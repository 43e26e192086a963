//! The pages as a person uses them, in Debian's chromium driven headless by playwright-core:
//! `tests/browser/check_pages.mjs` draws a 7 on `/demo` and uploads a sample through Swagger UI.

use std::process::Command;

use crate::helpers::{data_dir, project_root, ServerProcess};

/// A `node_modules` directory holding `playwright-core` (`.ci/run` installs it from npm).
const NODE_MODULES_VAR: &str = "MNIST_BROWSER_NODE_MODULES";

#[test]
fn a_digit_drawn_on_the_demo_page_and_a_swagger_ui_upload_are_classified() {
    let Some(node_modules) = data_dir(NODE_MODULES_VAR) else {
        return;
    };
    let server = ServerProcess::start(&[]);
    let screenshots = project_root().join("target/browser-screenshots");
    std::fs::create_dir_all(&screenshots).expect("screenshot directory");
    let output = Command::new("node")
        .arg(project_root().join("tests/browser/check_pages.mjs"))
        .arg(&server.url)
        .arg(project_root().join("samples"))
        .arg(&screenshots)
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
    for shot in ["demo.png", "swagger-ui.png"] {
        let size = std::fs::metadata(screenshots.join(shot)).map_or(0, |m| m.len());
        assert!(size > 10_000, "{shot} is {size} bytes");
    }
}
