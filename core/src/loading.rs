//! From a file to a served model: a TorchServe `.mar` (read in memory) or a weights file (PyTorch
//! checkpoint, legacy or zip, or safetensors), the network recognised from its state dict.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::architectures::{recognise, ModelIdentity};
use crate::model::Model;
use crate::{archive, weights, CoreError, ImageLimits, WeightsError};

/// A model to load: its file, and the name and version to serve it under when the file's own
/// (a `.mar` manifest's, else the file's stem and "1.0") should not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSource {
    pub path: PathBuf,
    pub name: Option<String>,
    pub version: Option<String>,
}

/// Bounds on loading and on what the loaded model accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadLimits {
    /// Largest weights file, `.mar` archive, or entry inflated from one, in bytes.
    pub max_model_bytes: u64,
    pub image: ImageLimits,
}

/// What `torch-model-archiver` calls a model it is given no version for.
const DEFAULT_VERSION: &str = "1.0";

/// Loads and checks the model in `source.path`.
pub fn load(source: &ModelSource, limits: &LoadLimits) -> Result<Arc<dyn Model>, CoreError> {
    let bytes = read_bounded(&source.path, limits.max_model_bytes)?;
    let (tensors, identity) = if archive::is_model_archive(&bytes)? {
        let archive = archive::read(&bytes, limits.max_model_bytes)?;
        let identity = ModelIdentity {
            name: source.name.clone().unwrap_or(archive.name),
            version: source.version.clone().unwrap_or(archive.version),
            labels: archive.labels,
        };
        let tensors = weights::read_tensors(&archive.weights).map_err(|err| {
            WeightsError::Archive(format!(
                "serializedFile `{}`: {err}",
                archive.serialized_file
            ))
        })?;
        (tensors, identity)
    } else {
        let identity = ModelIdentity {
            name: source
                .name
                .clone()
                .unwrap_or_else(|| file_stem(&source.path)),
            version: source
                .version
                .clone()
                .unwrap_or_else(|| DEFAULT_VERSION.into()),
            labels: None,
        };
        (weights::read_tensors(&bytes)?, identity)
    };
    let (architecture, state_dict) = recognise(tensors)?;
    architecture.build(&state_dict, identity, limits.image.clone())
}

/// The file's bytes, refusing one larger than `limit` before reading it.
fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, WeightsError> {
    let io = |source| WeightsError::Io {
        path: path.to_owned(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > limit {
        return Err(WeightsError::TooLarge {
            what: path.display().to_string(),
            size,
            limit,
        });
    }
    std::fs::read(path).map_err(io)
}

/// `mnist` for `model_store/mnist.mar`.
fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into())
}
