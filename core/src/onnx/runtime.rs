//! ONNX Runtime's shared library, found and loaded once per process: from `ORT_DYLIB_PATH`, else
//! the configured path (setting `onnx.runtime_library`), else an installed `onnxruntime` Python
//! wheel's `capi/libonnxruntime.so.*`. Nothing is downloaded.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;

use crate::WeightsError;

/// The command that installs the library where it is looked for.
pub const INSTALL_HINT: &str = "pip install onnxruntime==1.32.0";

/// The environment variable `ort` and ONNX Runtime's own tools read.
pub const LIBRARY_VARIABLE: &str = "ORT_DYLIB_PATH";

static CONFIGURED: OnceLock<Option<PathBuf>> = OnceLock::new();
static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

/// Names the library the setting gives; only the first call counts, and only before the first
/// ONNX model loads.
pub fn configure_library(path: Option<PathBuf>) {
    let _ = CONFIGURED.set(path.filter(|p| !p.as_os_str().is_empty()));
}

/// The process's ONNX Runtime environment, loading the library on first use.
pub fn environment() -> Result<&'static Environment, WeightsError> {
    ENVIRONMENT
        .get_or_init(|| {
            let library = find_library()?;
            ort::init_from(&library)
                .map_err(|err| {
                    format!(
                        "{} cannot be loaded as ONNX Runtime ({err}): point {LIBRARY_VARIABLE} at libonnxruntime.so 1.22 or later, or run `{INSTALL_HINT}`",
                        library.display()
                    )
                })?
                .with_name("max-mnist")
                .with_telemetry(false)
                .build()
                .map_err(|err| format!("ONNX Runtime cannot start: {err}"))
        })
        .as_ref()
        .map_err(|message| WeightsError::Onnx(message.clone()))
}

/// Where the library is, in the order the module documents.
fn find_library() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(LIBRARY_VARIABLE).filter(|p| !p.is_empty()) {
        return existing(PathBuf::from(path), LIBRARY_VARIABLE);
    }
    if let Some(Some(path)) = CONFIGURED.get() {
        return existing(path.clone(), "setting onnx.runtime_library");
    }
    installed_wheel().ok_or_else(|| {
        format!(
            "ONNX Runtime's library was not found ({LIBRARY_VARIABLE} and the setting onnx.runtime_library are unset, and no onnxruntime wheel is installed): run `{INSTALL_HINT}`, or set {LIBRARY_VARIABLE} to libonnxruntime.so"
        )
    })
}

fn existing(path: PathBuf, source: &str) -> Result<PathBuf, String> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{source} names {}, which is not a file: install ONNX Runtime with `{INSTALL_HINT}` and point it at capi/libonnxruntime.so.*",
            path.display()
        ))
    }
}

/// The newest `onnxruntime/capi/libonnxruntime.so.*` in the Python package directories of the
/// active virtual environment, the user's and the system's.
fn installed_wheel() -> Option<PathBuf> {
    let mut prefixes: Vec<PathBuf> = ["VIRTUAL_ENV", "CONDA_PREFIX"]
        .iter()
        .filter_map(std::env::var_os)
        .map(PathBuf::from)
        .collect();
    if let Some(home) = std::env::var_os("HOME").map(PathBuf::from) {
        prefixes.push(home.join(".local"));
        prefixes.extend(children(&home.join(".pyenv/versions")));
    }
    prefixes.extend(["/usr/local", "/usr", "/opt/onnxruntime"].map(PathBuf::from));
    let mut package_dirs: Vec<PathBuf> = std::env::var_os("PYTHONPATH")
        .map(|paths| std::env::split_paths(&paths).collect())
        .unwrap_or_default();
    for prefix in &prefixes {
        for lib in children(&prefix.join("lib")) {
            if lib
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("python3"))
            {
                package_dirs.push(lib.join("site-packages"));
                package_dirs.push(lib.join("dist-packages"));
            }
        }
    }
    package_dirs
        .iter()
        .flat_map(|dir| children(&dir.join("onnxruntime/capi")))
        .filter(|path| {
            path.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("libonnxruntime.so."))
        })
        .max_by_key(|path| version_of(path))
}

fn children(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

/// `[1, 32, 0]` for `libonnxruntime.so.1.32.0`.
fn version_of(path: &Path) -> Vec<u32> {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .and_then(|name| name.strip_prefix("libonnxruntime.so.").map(str::to_owned))
        .map(|version| version.split('.').filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_as_numbers() {
        assert!(
            version_of(Path::new("a/libonnxruntime.so.1.32.0"))
                > version_of(Path::new("b/libonnxruntime.so.1.9.9"))
        );
    }
}
