//! Which models to serve, and loading them: `--models` (env `MODELS`), else `[[models]]` in the
//! configuration, else the MAX model of `[model]`. They load in parallel before the server
//! listens; one that cannot load stops the start with a message naming it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use max_mnist_api::confined::{self, Refusal};
use max_mnist_api::LoadedModel;
use max_mnist_core::{LoadLimits, ModelSettings, ModelSource};

use crate::configuration::{ConfiguredModel, Settings};

/// A model to load, and what to say when it cannot be.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelToLoad {
    pub source: ModelSource,
    /// The path as given, which TorchServe's management API shows as the model's URL.
    pub url: String,
    pub hint: &'static str,
}

const MAX_HINT: &str = "run `max-mnist fetch-assets` to download and verify the upstream weights, or point --weights (env MAX_MNIST_WEIGHTS) at your own file";
const MODELS_HINT: &str =
    "check the file, or the name and path given to --models (env MODELS) or [[models]]";

/// `NAME=PATH`, or `PATH` alone.
pub fn parse_model_arg(arg: &str) -> anyhow::Result<ConfiguredModel> {
    let arg = arg.trim();
    let (name, path) = match arg.split_once('=') {
        Some((name, path)) => (Some(name.trim().to_owned()), path.trim()),
        None => (None, arg),
    };
    if path.is_empty() || name.as_deref() == Some("") {
        bail!("`{arg}` is not NAME=PATH: give a model as mnist=mnist.mar, or a path alone");
    }
    Ok(ConfiguredModel {
        name,
        path: path.into(),
        version: None,
        settings: ModelSettings::default(),
    })
}

/// What to load: `models` when given (from the command line or config.properties, already
/// split; empty: none, an empty start), else the configuration's `[[models]]`, else — when
/// `max_by_default` — the MAX model.
pub fn to_load(
    settings: &Settings,
    models: Option<&[String]>,
    store: &Path,
    weights: Option<&Path>,
    max_by_default: bool,
) -> anyhow::Result<Vec<ModelToLoad>> {
    let entries = match models {
        Some(args) => args
            .iter()
            .filter(|arg| !arg.trim().is_empty())
            .map(|arg| parse_model_arg(arg))
            .collect::<anyhow::Result<Vec<_>>>()?,
        None => settings.models.clone(),
    };
    if entries.is_empty() && (models.is_some() || !max_by_default) {
        return Ok(Vec::new());
    }
    if entries.is_empty() {
        let path = weights.map_or_else(|| settings.model.weights.clone(), Path::to_path_buf);
        return Ok(vec![ModelToLoad {
            url: file_name(&path),
            source: ModelSource {
                path,
                name: Some(settings.model.name.clone()),
                version: Some(settings.model.version.clone()),
                settings: ModelSettings::default(),
            },
            hint: MAX_HINT,
        }]);
    }
    entries
        .into_iter()
        .map(|entry| {
            Ok(ModelToLoad {
                url: entry.path.display().to_string(),
                source: ModelSource {
                    path: in_store(store, &entry.path)?,
                    name: entry.name,
                    version: entry.version,
                    settings: entry.settings,
                },
                hint: MODELS_HINT,
            })
        })
        .collect()
}

/// The file a model's `path` names: an absolute path as the operator gives it; a relative one in
/// the model store (the working directory when none is set), by the one rule of every file named
/// inside a directory ([`confined::resolve`]: no `..`, no symlink out, a regular file). The path
/// is kept as written under the store, so that a link inside it keeps its own name.
fn in_store(store: &Path, path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path.to_owned());
    }
    let (dir, called) = if store.as_os_str().is_empty() {
        (Path::new("."), "the working directory".to_owned())
    } else {
        (store, format!("the model store {}", store.display()))
    };
    let checked = confined::resolve(dir, path).map(|_| {
        if store.as_os_str().is_empty() {
            path.to_owned()
        } else {
            store.join(path)
        }
    });
    checked.map_err(|refusal| {
        let why = match refusal {
            Refusal::Empty => "is empty".to_owned(),
            Refusal::Absolute => "is an absolute path".to_owned(),
            Refusal::Parent => format!("leads out of {called} (`..`)"),
            Refusal::Directory(err) => format!(
                "cannot be looked up: {called} cannot be read ({err}); check --model-store (env MODEL_STORE) or `model_store`"
            ),
            Refusal::Missing => format!("is not a file in {called}"),
            Refusal::LeadsOut => format!("is a symlink that leads out of {called}"),
            Refusal::NotAFile => format!("is not a regular file in {called}"),
        };
        anyhow::anyhow!(
            "the model path `{}` {why}: name a file by its path inside {called}, or give its absolute path; {MODELS_HINT}",
            path.display()
        )
    })
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |name| name.to_string_lossy().into_owned(),
    )
}

/// Loads every model at once, one thread each; the first that fails stops the start.
pub fn load_all(models: &[ModelToLoad], limits: &LoadLimits) -> anyhow::Result<Vec<LoadedModel>> {
    let loaded = std::thread::scope(|scope| {
        let handles: Vec<_> = models
            .iter()
            .map(|model| scope.spawn(move || max_mnist_core::load(&model.source, limits)))
            .collect();
        handles
            .into_iter()
            .zip(models)
            .map(|(handle, model)| {
                let result = handle
                    .join()
                    .map_err(|_| anyhow::anyhow!("loading panicked"))
                    .and_then(|result| result.map_err(anyhow::Error::from));
                result
                    .map(|loaded| LoadedModel {
                        model: loaded,
                        url: model.url.clone(),
                        loaded_at_startup: true,
                    })
                    .with_context(|| {
                        format!(
                            "cannot load the model {}from {}; {}",
                            model
                                .source
                                .name
                                .as_deref()
                                .map(|name| format!("`{name}` "))
                                .unwrap_or_default(),
                            model.source.path.display(),
                            model.hint
                        )
                    })
            })
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    for (index, model) in loaded.iter().enumerate() {
        let name = &model.model.info().name;
        if let Some(other) = loaded[..index]
            .iter()
            .find(|other| &other.model.info().name == name)
        {
            bail!(
                "two models are named `{name}` ({} and {}): name one otherwise with NAME=PATH",
                other.url,
                model.url
            );
        }
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_are_given_as_torchserve_takes_them() {
        let entry = parse_model_arg(" mnist=mnist.mar ").expect("parses");
        assert_eq!(
            (entry.name.as_deref(), entry.path.as_path()),
            (Some("mnist"), Path::new("mnist.mar"))
        );
        let bare = parse_model_arg("store/titanic.mar").expect("parses");
        assert_eq!(bare.name, None);
        for bad in ["mnist=", "=mnist.mar", ""] {
            assert!(parse_model_arg(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn relative_paths_are_in_the_store_and_no_models_means_the_max_model() {
        let settings = Settings::load(Some(Path::new("config.toml"))).expect("config");
        let root = tempfile::tempdir().expect("temp dir");
        let store = root.path().join("store");
        std::fs::create_dir(&store).expect("store");
        std::fs::write(store.join("mnist.mar"), b"archive").expect("write");
        std::fs::write(root.path().join("outside.mar"), b"archive").expect("write");
        std::os::unix::fs::symlink(root.path().join("outside.mar"), store.join("out.mar"))
            .expect("symlink");
        let args = ["mnist=mnist.mar".to_owned(), "max=/abs/max.pt".to_owned()];
        let chosen = to_load(&settings, Some(&args), &store, None, true).expect("chosen");
        assert_eq!(chosen[0].source.path, store.join("mnist.mar"));
        assert_eq!(chosen[0].url, "mnist.mar");
        assert_eq!(chosen[1].source.path, Path::new("/abs/max.pt"));
        for (arg, says) in [
            ("x=../outside.mar", "leads out of the model store"),
            (
                "x=out.mar",
                "is a symlink that leads out of the model store",
            ),
            ("x=missing.mar", "is not a file in the model store"),
        ] {
            let message = to_load(&settings, Some(&[arg.to_owned()]), &store, None, true)
                .expect_err(arg)
                .to_string();
            assert!(message.contains(says), "{arg}: {message}");
            assert!(message.contains("--models"), "{arg}: {message}");
        }
        let default = to_load(&settings, None, &store, None, true).expect("chosen");
        assert_eq!(default.len(), 1);
        assert_eq!(
            default[0].source.path,
            Path::new("assets/mnist-classifier.pt")
        );
        assert_eq!(default[0].source.name.as_deref(), Some("mnist"));
        assert_eq!(default[0].url, "mnist-classifier.pt");
        let none: [String; 1] = [String::new()];
        assert!(to_load(&settings, Some(&none), &store, None, true)
            .expect("empty")
            .is_empty());
        assert!(to_load(&settings, None, &store, None, false)
            .expect("empty")
            .is_empty());
    }
}
