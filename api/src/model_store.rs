//! The model store: the one directory the management API may register models from. A `url` names
//! a file in it, never anything else: TorchServe's registration by URL let anyone who reached the
//! management port make the server download and run a model (CVE-2023-43654), and a path that
//! leaves the store would let them read any file the server can. So a URL of any scheme, an
//! absolute path, `..`, and a path whose symlinks lead out are refused before a file is opened,
//! and no network connection is ever made.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::web;
use max_mnist_core::ModelSource;

use crate::confined::{self, Refusal};
use crate::errors::ApiError;
use crate::registry::{LoadedModel, Registration, ServedModel};
use crate::state::AppState;

/// Loads the file `url` names in the store (off the async workers) and serves it at once as
/// `name` (default: the manifest's `modelName`, else the file's stem). Nothing changes when any
/// step fails: a file not in the store is a 404 (as TorchServe's `ModelArchive.downloadModel`
/// answers), a bad file or a way out of the store a 400, a version already served a 409.
pub async fn register(
    state: &web::Data<AppState>,
    url: &str,
    name: Option<String>,
) -> Result<Arc<ServedModel>, ApiError> {
    register_with(state, url, name, Registration::default()).await
}

/// [`register`], keeping what TorchServe's registration request said about the model.
pub async fn register_with(
    state: &web::Data<AppState>,
    url: &str,
    name: Option<String>,
    registration: Registration,
) -> Result<Arc<ServedModel>, ApiError> {
    let path = resolve(state.settings.model_store.as_deref(), url)?;
    if let Some(name) = &name {
        check_name(name)?;
    }
    let limits = state.settings.load_limits.clone();
    let source = ModelSource {
        name,
        ..ModelSource::file(path)
    };
    let model = web::block(move || max_mnist_core::load(&source, &limits))
        .await
        .map_err(|err| ApiError::Internal(format!("loading a model stopped: {err}")))?
        .map_err(|err| {
            ApiError::BadRequest(format!(
                "cannot register `{url}`: {err}; check that it is a TorchServe .mar, an ONNX model, or a PyTorch state dict of a network this server runs"
            ))
        })?;
    check_name(&model.info().name)?;
    state.register_with(
        LoadedModel {
            model,
            url: url.to_owned(),
            loaded_at_startup: false,
        },
        registration,
    )
}

/// A name every route can carry in its path, as TorchServe allows them.
fn check_name(name: &str) -> Result<(), ApiError> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if valid {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "`{name}` cannot be a model name: use letters, digits, `_`, `-` and `.`, starting with a letter or digit (give model_name)"
        )))
    }
}

const NO_STORE: &str = "this server has no model store, so it cannot register models: start it with --model-store DIR (env MODEL_STORE) and copy the .mar there";

/// The file `url` names in `store`, by the one rule of [`confined::resolve`]. What is not there
/// (no store, no such file, an empty name) is a 404, as TorchServe's `ModelNotFoundException`; a
/// URL, an absolute path, `..` and a symlink out are 400s.
pub fn resolve(store: Option<&Path>, url: &str) -> Result<PathBuf, ApiError> {
    if let Some(scheme) = scheme(url) {
        return Err(ApiError::BadRequest(format!(
            "cannot register `{url}`: it is a `{scheme}:` URL, and max-mnist never fetches models (registering by URL was TorchServe's CVE-2023-43654): copy the file into the model store and give its name, e.g. `url=mnist.mar`"
        )));
    }
    let name = Path::new(url);
    let Some(store) = store else {
        confined::check_name(name).map_err(|refusal| refused(url, refusal, None))?;
        return Err(ApiError::NotFound(NO_STORE.into()));
    };
    confined::resolve(store, name).map_err(|refusal| refused(url, refusal, Some(store)))
}

/// Why `url` cannot be registered, and what to do, with the store's files where they help.
fn refused(url: &str, refusal: Refusal, store: Option<&Path>) -> ApiError {
    let refuse = |why: String| ApiError::BadRequest(format!("cannot register `{url}`: {why}"));
    let listing = || store.map_or_else(String::new, listing);
    match refusal {
        Refusal::Empty => ApiError::NotFound(
            "the parameter `url` is empty: name a .mar file in the model store, e.g. `url=mnist.mar`".into(),
        ),
        Refusal::Absolute => refuse(
            "it is an absolute path; `url` names a file in the model store by its path inside it, e.g. `url=mnist.mar`".into(),
        ),
        Refusal::Parent => refuse(
            "`..` would leave the model store; `url` names a file inside it, e.g. `url=mnist.mar`".into(),
        ),
        Refusal::Directory(err) => ApiError::Internal(format!(
            "the model store {} cannot be read ({err}): check --model-store",
            store.map_or_else(String::new, |store| store.display().to_string())
        )),
        Refusal::Missing => ApiError::NotFound(format!(
            "cannot register `{url}`: there is no such file in the model store: {}",
            listing()
        )),
        Refusal::LeadsOut => refuse(
            "it is a symlink that leads out of the model store; copy the file into the store instead".into(),
        ),
        Refusal::NotAFile => refuse(format!("it is not a regular file; {}", listing())),
    }
}

/// `http` of `http://…`, `file` of `file:/…`: a scheme as RFC 3986 spells it, longer than one
/// letter so that nothing on a Unix path is mistaken for one.
fn scheme(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && scheme.len() > 1
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

/// "the store holds a.mar, b.mar", for error messages.
fn listing(store: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(store)
        .map(|entries| {
            entries
                .flatten()
                .filter(|entry| entry.path().is_file())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    if names.is_empty() {
        "the model store is empty".into()
    } else {
        format!("the model store holds {}", names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(result: Result<PathBuf, ApiError>) -> String {
        match result {
            Err(ApiError::BadRequest(message) | ApiError::NotFound(message)) => message,
            other => panic!("expected a 400 or a 404, got {other:?}"),
        }
    }

    #[test]
    fn files_in_the_store_resolve_and_nothing_else_does() {
        let root = tempfile::tempdir().expect("temp dir");
        let store = root.path().join("store");
        std::fs::create_dir_all(store.join("sub")).expect("store");
        std::fs::write(store.join("mnist.mar"), b"archive").expect("write");
        std::fs::write(store.join("sub/titanic.mar"), b"archive").expect("write");
        std::fs::write(root.path().join("secret.mar"), b"secret").expect("write");
        std::os::unix::fs::symlink(root.path().join("secret.mar"), store.join("out.mar"))
            .expect("symlink");
        std::os::unix::fs::symlink(store.join("mnist.mar"), store.join("alias.mar"))
            .expect("symlink");
        let store = Some(store.as_path());

        let found = resolve(store, "mnist.mar").expect("in the store");
        assert!(found.ends_with("store/mnist.mar"), "{}", found.display());
        assert!(resolve(store, "./sub/titanic.mar").is_ok());
        assert!(
            resolve(store, "alias.mar").is_ok(),
            "a symlink inside the store"
        );

        for (url, why) in [
            ("https://example.com/mnist.mar", "`https:` URL"),
            ("http://127.0.0.1:9/mnist.mar", "`http:` URL"),
            ("file:///etc/passwd", "`file:` URL"),
            ("s3://bucket/mnist.mar", "`s3:` URL"),
            ("/etc/passwd", "absolute path"),
            ("../secret.mar", "`..`"),
            ("sub/../../secret.mar", "`..`"),
            ("out.mar", "symlink that leads out"),
            ("missing.mar", "no such file"),
            ("sub", "not a regular file"),
        ] {
            let message = message(resolve(store, url));
            assert!(message.contains(why), "{url}: {message}");
        }
        assert!(message(resolve(store, "missing.mar")).contains("alias.mar, mnist.mar, out.mar"));
        assert!(message(resolve(None, "mnist.mar")).contains("--model-store"));
        assert!(message(resolve(store, " ")).contains("`url` is empty"));
        for missing in ["missing.mar", " "] {
            assert!(
                matches!(resolve(store, missing), Err(ApiError::NotFound(_))),
                "{missing}"
            );
        }
        assert!(matches!(
            resolve(None, "mnist.mar"),
            Err(ApiError::NotFound(_))
        ));
        for way_out in ["out.mar", "../secret.mar"] {
            assert!(
                matches!(resolve(store, way_out), Err(ApiError::BadRequest(_))),
                "{way_out}"
            );
        }
    }
}
