//! The Python clients people use (`tritonclient[http]`, `kserve`) against the real binary:
//! `tests/clients/check_clients.py`, run by the Python of the virtual environment `.ci/run` makes.

use std::process::Command;

use crate::helpers::{data_dir, project_root, ServerProcess};

/// A Python with `scripts/requirements.txt` installed.
const CLIENT_PYTHON_VAR: &str = "MNIST_CLIENT_PYTHON";

#[test]
fn tritonclient_and_kserve_work_unchanged() {
    let Some(python) = data_dir(CLIENT_PYTHON_VAR) else {
        return;
    };
    let server = ServerProcess::start(&[]);
    let output = Command::new(&python)
        .arg(project_root().join("tests/clients/check_clients.py"))
        .arg(&server.url)
        .arg(project_root().join("samples"))
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
