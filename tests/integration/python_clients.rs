//! The Python clients people use (`tritonclient[http]`, `kserve`) against the real binary serving
//! TorchServe's `mnist.mar` and the MAX model side by side: `tests/clients/check_clients.py`, run by
//! the Python of the virtual environment `.ci/run` makes, on each model; and `tritonclient`'s
//! model repository calls on the management API, loading and unloading a model of the store.

use std::process::Command;

use crate::helpers::{data_dir, project_root, torchserve_dir, upstream_weights, ServerProcess};

/// A Python with `scripts/requirements.txt` installed.
const CLIENT_PYTHON_VAR: &str = "MNIST_CLIENT_PYTHON";

#[test]
#[ignore = "needs MNIST_CLIENT_PYTHON (.ci/run sets it and runs ignored tests)"]
fn tritonclient_and_kserve_work_unchanged_on_each_model() {
    let (python, torchserve) = (data_dir(CLIENT_PYTHON_VAR), torchserve_dir());
    let models = format!(
        "mnist={},max={}",
        torchserve.join("mnist.mar").display(),
        upstream_weights().display()
    );
    let store = tempfile::tempdir().expect("temp dir");
    std::fs::copy(upstream_weights(), store.path().join("spare.pt")).expect("copy");
    let server = ServerProcess::serve(
        &[
            "--models",
            &models,
            "--model-store",
            store.path().to_str().expect("UTF-8"),
            "--management-port",
            "0",
        ],
        &[],
    );
    let management = server.management_url().expect("the management API");
    let output = Command::new(&python)
        .arg(project_root().join("tests/clients/check_clients.py"))
        .arg(&server.url)
        .arg(project_root().join("samples"))
        .args(["mnist", "max", "--repository", &management, "spare"])
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
