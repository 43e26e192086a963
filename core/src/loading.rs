//! From a file to a served model: a TorchServe `.mar` (read in memory) or a network file — an ONNX
//! graph, or a state dict (PyTorch checkpoint, legacy or zip, or safetensors) of a network
//! implemented natively — told apart by content.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::architectures::{recognise, ModelIdentity};
use crate::model::Model;
use crate::model_settings::ModelSettings;
use crate::onnx::{self, OnnxModel};
use crate::{archive, weights, CoreError, ImageLimits, WeightsError};

/// A model to load: its file, the name and version to serve it under when the file's own (a
/// `.mar` manifest's, else the file's stem and "1.0") should not be used, and the settings given
/// beside it (which win over those a `.mar` carries).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSource {
    pub path: PathBuf,
    pub name: Option<String>,
    pub version: Option<String>,
    pub settings: ModelSettings,
}

impl ModelSource {
    /// The file, under its own name and version, with no settings.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            name: None,
            version: None,
            settings: ModelSettings::default(),
        }
    }
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

/// A kind of network file, told by its content. Adding one is a module that implements this and
/// an entry in [`NETWORK_FILES`].
pub trait NetworkFile: Sync {
    /// Whether `bytes` are this kind of file.
    fn claims(&self, bytes: &[u8]) -> Result<bool, WeightsError>;

    /// The served model of the file.
    fn load(&self, file: NetworkBytes<'_>) -> Result<Arc<dyn Model>, CoreError>;
}

/// A network file's bytes and what serving it needs besides.
pub struct NetworkBytes<'a> {
    pub bytes: &'a [u8],
    /// The file's name, for messages.
    pub file_name: &'a str,
    pub identity: ModelIdentity,
    pub settings: ModelSettings,
    pub limits: ImageLimits,
}

/// The network files this server reads, in the order they are tried: the first that claims a
/// file loads it.
pub static NETWORK_FILES: [&dyn NetworkFile; 3] = [&TorchScriptFile, &OnnxFile, &StateDictFile];

/// A TorchScript archive (`torch.jit.save`), refused with the export that makes it servable.
struct TorchScriptFile;

impl NetworkFile for TorchScriptFile {
    fn claims(&self, bytes: &[u8]) -> Result<bool, WeightsError> {
        weights::is_torchscript(bytes)
    }

    fn load(&self, _file: NetworkBytes<'_>) -> Result<Arc<dyn Model>, CoreError> {
        Err(WeightsError::TorchScript.into())
    }
}

/// An ONNX graph, run by ONNX Runtime.
struct OnnxFile;

impl NetworkFile for OnnxFile {
    fn claims(&self, bytes: &[u8]) -> Result<bool, WeightsError> {
        Ok(onnx::is_onnx(bytes))
    }

    fn load(&self, file: NetworkBytes<'_>) -> Result<Arc<dyn Model>, CoreError> {
        Ok(Arc::new(OnnxModel::load(
            file.bytes,
            file.file_name,
            file.identity,
            file.settings,
            file.limits,
        )?))
    }
}

/// A state dict (PyTorch checkpoint, legacy or zip, or safetensors) of a network implemented
/// natively, recognised by its tensors' names and shapes.
struct StateDictFile;

impl NetworkFile for StateDictFile {
    fn claims(&self, _bytes: &[u8]) -> Result<bool, WeightsError> {
        Ok(true)
    }

    fn load(&self, file: NetworkBytes<'_>) -> Result<Arc<dyn Model>, CoreError> {
        let (architecture, state_dict) = recognise(weights::read_tensors(file.bytes)?)?;
        architecture.build(&state_dict, file.identity, file.limits)
    }
}

/// Loads and checks the model in `source.path`.
pub fn load(source: &ModelSource, limits: &LoadLimits) -> Result<Arc<dyn Model>, CoreError> {
    let bytes = read_bounded(&source.path, limits.max_model_bytes)?;
    if archive::is_model_archive(&bytes)? {
        let archive::ModelArchive {
            name,
            version,
            serialized_file,
            weights,
            labels,
            settings,
        } = archive::read(&bytes, limits.max_model_bytes)?;
        let file = NetworkBytes {
            bytes: &weights,
            file_name: &serialized_file,
            identity: ModelIdentity {
                name: source.name.clone().unwrap_or(name),
                version: source.version.clone().unwrap_or(version),
                labels,
            },
            settings: source.settings.clone().or(settings),
            limits: limits.image.clone(),
        };
        return load_network(file).map_err(|err| match err {
            CoreError::Weights(err) => {
                WeightsError::Archive(format!("serializedFile `{serialized_file}`: {err}")).into()
            }
            other => other,
        });
    }
    let file_name = source
        .path
        .file_name()
        .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned());
    load_network(NetworkBytes {
        bytes: &bytes,
        file_name: &file_name,
        identity: ModelIdentity {
            name: source
                .name
                .clone()
                .unwrap_or_else(|| file_stem(&source.path)),
            version: source
                .version
                .clone()
                .unwrap_or_else(|| DEFAULT_VERSION.into()),
            labels: None,
        },
        settings: source.settings.clone(),
        limits: limits.image.clone(),
    })
}

/// The model of the first kind of network file that claims the bytes.
fn load_network(file: NetworkBytes<'_>) -> Result<Arc<dyn Model>, CoreError> {
    for kind in NETWORK_FILES {
        if kind.claims(file.bytes)? {
            return kind.load(file);
        }
    }
    Err(WeightsError::UnknownFormat.into())
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
