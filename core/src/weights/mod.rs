//! Loading MyConvNet's state dict from a PyTorch checkpoint (legacy or zip format) or a safetensors
//! file, chosen by the file's magic bytes, and checking it against the network's keys and shapes.

mod pickled;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::WeightsError;

/// Every tensor of MyConvNet's state dict, with its shape.
pub const MY_CONVNET_TENSORS: [(&str, &[usize]); 8] = [
    ("conv1.weight", &[2, 1, 5, 5]),
    ("conv1.bias", &[2]),
    ("conv2.weight", &[6, 2, 5, 5]),
    ("conv2.bias", &[6]),
    ("fc1.weight", &[32, 96]),
    ("fc1.bias", &[32]),
    ("fc2.weight", &[10, 32]),
    ("fc2.bias", &[10]),
];

/// MyConvNet's tensors by name, all `f32`, shapes checked.
pub type StateDict = HashMap<String, Tensor>;

/// The file formats we read, as told by their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightsFormat {
    /// `torch.save` before PyTorch 1.6: a sequence of pickles, then raw storages.
    LegacyCheckpoint,
    /// `torch.save` since PyTorch 1.6: a zip archive.
    ZipCheckpoint,
    Safetensors,
}

impl WeightsFormat {
    pub fn detect(bytes: &[u8]) -> Option<Self> {
        if pickled::is_legacy_checkpoint(bytes) {
            Some(Self::LegacyCheckpoint)
        } else if bytes.starts_with(b"PK\x03\x04") {
            Some(Self::ZipCheckpoint)
        } else if looks_like_safetensors(bytes) {
            Some(Self::Safetensors)
        } else {
            None
        }
    }
}

/// A safetensors file starts with the little-endian length of a JSON header that follows.
fn looks_like_safetensors(bytes: &[u8]) -> bool {
    let Some((len, rest)) = bytes.split_first_chunk::<8>() else {
        return false;
    };
    let header_len = u64::from_le_bytes(*len);
    header_len >= 2 && header_len <= rest.len() as u64 && rest.first() == Some(&b'{')
}

/// Reads and checks MyConvNet's weights from `path`.
pub fn load_state_dict(path: &Path) -> Result<StateDict, WeightsError> {
    let bytes = std::fs::read(path).map_err(|source| WeightsError::Io {
        path: path.to_owned(),
        source,
    })?;
    read_state_dict(&bytes).map_err(|err| match err {
        WeightsError::UnknownFormat { .. } => WeightsError::UnknownFormat {
            path: path.to_owned(),
        },
        other => other,
    })
}

/// Reads and checks MyConvNet's weights from the bytes of a weights file.
pub fn read_state_dict(bytes: &[u8]) -> Result<StateDict, WeightsError> {
    let tensors = match WeightsFormat::detect(bytes) {
        Some(WeightsFormat::LegacyCheckpoint) => pickled::read_legacy(bytes)?,
        Some(WeightsFormat::ZipCheckpoint) => pickled::read_zip(bytes)?,
        Some(WeightsFormat::Safetensors) => {
            candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
                .map_err(|err| WeightsError::Malformed(format!("safetensors: {err}")))?
        }
        None => {
            return Err(WeightsError::UnknownFormat {
                path: "the weights".into(),
            })
        }
    };
    check_state_dict(tensors)
}

/// Keeps exactly MyConvNet's tensors, with their shapes, as `f32`.
fn check_state_dict(mut tensors: HashMap<String, Tensor>) -> Result<StateDict, WeightsError> {
    let mut checked = StateDict::with_capacity(MY_CONVNET_TENSORS.len());
    for (name, shape) in MY_CONVNET_TENSORS {
        let tensor = tensors
            .remove(name)
            .ok_or_else(|| WeightsError::MissingKey(name.to_owned()))?;
        if tensor.dims() != shape {
            return Err(WeightsError::WrongShape {
                name: name.to_owned(),
                expected: shape.to_vec(),
                found: tensor.dims().to_vec(),
            });
        }
        if !tensor.dtype().is_float() {
            return Err(WeightsError::WrongDtype {
                name: name.to_owned(),
                found: format!("{:?}", tensor.dtype()),
            });
        }
        checked.insert(name.to_owned(), tensor.to_dtype(DType::F32)?);
    }
    let mut extra: Vec<String> = tensors.into_keys().collect();
    extra.sort();
    match extra.into_iter().next() {
        Some(name) => Err(WeightsError::UnexpectedKey(name)),
        None => Ok(checked),
    }
}
