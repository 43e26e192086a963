//! The Python clients people use (`tritonclient[http]`, `kserve`) against the real binary serving
//! TorchServe's `mnist.mar` and the MAX model side by side: `tests/clients/check_clients.py`, run by
//! the Python of the virtual environment `.ci/run` makes, on each model.

use std::process::Command;

use crate::helpers::{data_dir, project_root, torchserve_dir, upstream_weights, ServerProcess};

/// A Python with `scripts/requirements.txt` installed.
const CLIENT_PYTHON_VAR: &str = "MNIST_CLIENT_PYTHON";

#[test]
fn tritonclient_and_kserve_work_unchanged_on_each_model() {
    let (Some(python), Some(torchserve)) = (data_dir(CLIENT_PYTHON_VAR), torchserve_dir()) else {
        return;
    };
    let models = format!(
        "mnist={},max={}",
        torchserve.join("mnist.mar").display(),
        upstream_weights().display()
    );
    let server = ServerProcess::serve(&["--models", &models], &[]);
    let output = Command::new(&python)
        .arg(project_root().join("tests/clients/check_clients.py"))
        .arg(&server.url)
        .arg(project_root().join("samples"))
        .args(["mnist", "max"])
        .output()
        .unwrap_or_else(|err| panic!("run {}: {err}", python.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("all passed for mnist, max"),
        "{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.log()
    );
}
