//! Reading the tensors of a weights file — a PyTorch checkpoint (legacy or zip format) or a
//! safetensors file, told apart by their first bytes. The readers know no model: each architecture
//! checks its own keys and shapes ([`crate::architectures::Architecture::recognise`]).

mod pickled;

use std::collections::HashMap;

use candle_core::{Device, Tensor};

use crate::WeightsError;

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

/// Whether `bytes` are a TorchScript archive (`torch.jit.save`): a zip holding the module's code
/// (`*/code/…`) and its `constants.pkl`, which a state dict saved with `torch.save` never has. A
/// zip that cannot be read is not one (its reader reports why).
pub fn is_torchscript(bytes: &[u8]) -> Result<bool, WeightsError> {
    if !bytes.starts_with(b"PK\x03\x04") {
        return Ok(false);
    }
    let Ok(archive) = zip::ZipArchive::new(std::io::Cursor::new(bytes)) else {
        return Ok(false);
    };
    let names: Vec<String> = archive
        .file_names()
        .filter_map(Result::ok)
        .map(|name| name.into_owned())
        .collect();
    Ok(names.iter().any(|name| name.ends_with("/constants.pkl"))
        && names.iter().any(|name| name.contains("/code/")))
}

/// Every tensor of a weights file, by name.
pub fn read_tensors(bytes: &[u8]) -> Result<HashMap<String, Tensor>, WeightsError> {
    Ok(match WeightsFormat::detect(bytes) {
        Some(WeightsFormat::LegacyCheckpoint) => pickled::read_legacy(bytes)?,
        Some(WeightsFormat::ZipCheckpoint) => pickled::read_zip(bytes)?,
        Some(WeightsFormat::Safetensors) => {
            candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
                .map_err(|err| WeightsError::Malformed(format!("safetensors: {err}")))?
        }
        None => return Err(WeightsError::UnknownFormat),
    })
}
