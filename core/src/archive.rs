//! TorchServe model archives (`.mar`, made by `torch-model-archiver`): a zip holding
//! `MAR-INF/MANIFEST.json` (the model's name, version and serialized file), the weights, and
//! optionally `index_to_name.json` (the class labels). Read in memory, never unpacked to disk; each
//! entry is inflated only up to a bound, so a zip bomb is refused, not expanded. The handler and
//! model files in the archive are Python and are never run: the network is recognised from the
//! state dict or read from an ONNX graph, and a standard handler's name (`image_classifier`) selects
//! the pre- and post-processing the server reproduces.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};

use serde::Deserialize;

use crate::model_settings::{ModelSettings, SETTINGS_FILE};
use crate::WeightsError;

const MANIFEST: &str = "MAR-INF/MANIFEST.json";
const LABELS: &str = "index_to_name.json";
/// No manifest or label file comes near this.
const MAX_METADATA_BYTES: u64 = 1 << 20;

/// What a model archive holds that serving needs.
#[derive(Debug, Clone)]
pub struct ModelArchive {
    pub name: String,
    pub version: String,
    /// The manifest's `serializedFile`, for messages.
    pub serialized_file: String,
    /// That file's bytes.
    pub weights: Vec<u8>,
    /// From `index_to_name.json`, in class order, when the archive has one.
    pub labels: Option<Vec<String>>,
    /// The manifest's `handler`, overridden by what the archive's `max-mnist.toml` says.
    pub settings: ModelSettings,
}

#[derive(Deserialize)]
struct Manifest {
    model: ManifestModel,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestModel {
    model_name: String,
    #[serde(default = "default_version")]
    model_version: String,
    serialized_file: Option<String>,
    handler: Option<String>,
}

/// What `torch-model-archiver` writes when it is given no version.
fn default_version() -> String {
    "1.0".into()
}

/// Whether `bytes` are a zip with a TorchServe manifest (a zip-format `.pt` is a zip too); a zip
/// that cannot be read at all, such as a cut-short file, is an error.
pub fn is_model_archive(bytes: &[u8]) -> Result<bool, WeightsError> {
    if !bytes.starts_with(b"PK\x03\x04") {
        return Ok(false);
    }
    Ok(open(bytes)?.index_for_name(MANIFEST).is_some())
}

fn open(bytes: &[u8]) -> Result<zip::ZipArchive<Cursor<&[u8]>>, WeightsError> {
    zip::ZipArchive::new(Cursor::new(bytes)).map_err(|err| {
        WeightsError::Archive(format!(
            "not a readable zip archive ({err}): is the file complete? Copy it again, or re-create it"
        ))
    })
}

/// Reads a `.mar`, inflating no entry past `max_entry_bytes`.
pub fn read(bytes: &[u8], max_entry_bytes: u64) -> Result<ModelArchive, WeightsError> {
    let mut archive = open(bytes)?;
    let manifest = entry(&mut archive, MANIFEST, MAX_METADATA_BYTES)?
        .ok_or_else(|| WeightsError::Archive(format!("the archive has no {MANIFEST}")))?;
    let manifest: Manifest = serde_json::from_slice(&manifest).map_err(|err| {
        WeightsError::Archive(format!("{MANIFEST} is not a TorchServe manifest: {err}"))
    })?;
    let model = manifest.model;
    let serialized_file = model.serialized_file.ok_or_else(|| {
        WeightsError::Archive(format!(
            "{MANIFEST} names no serializedFile: archive the weights with --serialized-file"
        ))
    })?;
    let weights = entry(&mut archive, &serialized_file, max_entry_bytes)?.ok_or_else(|| {
        WeightsError::Archive(format!(
            "{MANIFEST} names serializedFile `{serialized_file}`, which the archive does not hold"
        ))
    })?;
    let labels = entry(&mut archive, LABELS, MAX_METADATA_BYTES)?
        .map(|json| parse_labels(&json))
        .transpose()?;
    let archived = match entry(&mut archive, SETTINGS_FILE, MAX_METADATA_BYTES)? {
        Some(bytes) => {
            let text = String::from_utf8(bytes).map_err(|_| {
                WeightsError::Settings(format!("{SETTINGS_FILE} in the archive is not UTF-8 text"))
            })?;
            ModelSettings::from_toml(&text, &format!("{SETTINGS_FILE} in the archive"))?
        }
        None => ModelSettings::default(),
    };
    let settings = archived.or(ModelSettings {
        handler: model.handler,
        ..ModelSettings::default()
    });
    Ok(ModelArchive {
        name: model.model_name,
        version: model.model_version,
        serialized_file,
        weights,
        labels,
        settings,
    })
}

/// The entry `name`, inflated up to `limit` bytes; `None` when the archive has no such entry.
fn entry(
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    name: &str,
    limit: u64,
) -> Result<Option<Vec<u8>>, WeightsError> {
    let mut file = match archive.by_name(name) {
        Ok(file) => file,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(err) => return Err(WeightsError::Archive(format!("{name}: {err}"))),
    };
    // The declared size is only a hint for the allocation; what inflates is counted.
    let mut data = Vec::with_capacity(file.size().min(limit) as usize);
    (&mut file)
        .take(limit + 1)
        .read_to_end(&mut data)
        .map_err(|err| WeightsError::Archive(format!("{name} cannot be inflated: {err}")))?;
    if data.len() as u64 > limit {
        return Err(WeightsError::TooLarge {
            what: format!("{name} inflated"),
            size: data.len() as u64,
            limit,
        });
    }
    Ok(Some(data))
}

/// `{"0": "zero", "1": "one"}`, or ImageNet's `{"0": ["n01440764", "tench"]}` (the last item is
/// the label), with keys 0..n.
fn parse_labels(json: &[u8]) -> Result<Vec<String>, WeightsError> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Label {
        Name(String),
        Names(Vec<String>),
    }
    let bad = |why: String| WeightsError::Archive(format!("{LABELS}: {why}"));
    let map: BTreeMap<String, Label> =
        serde_json::from_slice(json).map_err(|err| bad(format!("not a map of labels ({err})")))?;
    let mut labels = vec![None; map.len()];
    for (key, label) in map {
        let index = key
            .parse::<usize>()
            .ok()
            .filter(|&index| index < labels.len())
            .ok_or_else(|| {
                bad(format!(
                    "key `{key}` is not a class index from 0 to {}",
                    labels.len() - 1
                ))
            })?;
        labels[index] = Some(match label {
            Label::Name(name) => name,
            Label::Names(names) => names.last().cloned().unwrap_or_default(),
        });
    }
    labels
        .into_iter()
        .enumerate()
        .map(|(index, label)| label.ok_or_else(|| bad(format!("class {index} has no label"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use zip::write::SimpleFileOptions;

    use super::*;

    fn archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut writer = zip::ZipWriter::new(Cursor::new(&mut bytes));
        for (name, data) in entries {
            writer
                .start_file(*name, SimpleFileOptions::default())
                .expect("entry");
            writer.write_all(data).expect("write");
        }
        writer.finish().expect("finish");
        bytes
    }

    const MANIFEST_JSON: &[u8] = br#"{"createdOn": "23/11/2026", "runtime": "python",
        "model": {"modelName": "mnist", "serializedFile": "w.pt", "handler": "h.py", "modelVersion": "2.0"},
        "archiverVersion": "0.12.0"}"#;

    #[test]
    fn the_manifest_weights_and_labels_are_read() {
        let bytes = archive(&[
            (MANIFEST, MANIFEST_JSON),
            ("w.pt", b"weights"),
            (LABELS, br#"{"1": "one", "0": ["n0", "zero"]}"#),
        ]);
        assert!(is_model_archive(&bytes).expect("a zip"));
        let read = read(&bytes, 1 << 20).expect("reads");
        assert_eq!(
            (read.name.as_str(), read.version.as_str()),
            ("mnist", "2.0")
        );
        assert_eq!(read.weights, b"weights");
        assert_eq!(read.labels, Some(vec!["zero".into(), "one".into()]));
    }

    #[test]
    fn broken_archives_are_refused_naming_the_problem() {
        let refused = |bytes: &[u8]| read(bytes, 1 << 20).expect_err("refused").to_string();
        let whole = archive(&[(MANIFEST, MANIFEST_JSON), ("w.pt", b"weights")]);
        assert!(refused(&whole[..whole.len() / 2]).contains("is the file complete"));
        let missing = archive(&[(MANIFEST, MANIFEST_JSON)]);
        assert!(refused(&missing).contains("`w.pt`, which the archive does not hold"));
        let not_manifest = archive(&[(MANIFEST, b"[1, 2]"), ("w.pt", b"weights")]);
        assert!(refused(&not_manifest).contains("not a TorchServe manifest"));
        let labels = archive(&[
            (MANIFEST, MANIFEST_JSON),
            ("w.pt", b"w"),
            (LABELS, br#"{"5": "five"}"#),
        ]);
        assert!(refused(&labels).contains("key `5`"));
        assert!(!is_model_archive(&archive(&[("archive/data.pkl", b"")])).expect("a zip"));
        assert!(!is_model_archive(b"\x80\x02").expect("not a zip"));
        assert!(is_model_archive(&whole[..whole.len() / 2]).is_err());
    }

    #[test]
    fn an_entry_that_inflates_past_the_bound_is_refused_without_inflating_it() {
        let bomb = vec![0u8; 4 << 20];
        let bytes = archive(&[(MANIFEST, MANIFEST_JSON), ("w.pt", &bomb)]);
        assert!(bytes.len() < 64 << 10, "deflated to {} bytes", bytes.len());
        match read(&bytes, 1 << 20) {
            Err(WeightsError::TooLarge { what, limit, .. }) => {
                assert_eq!((what.as_str(), limit), ("w.pt inflated", 1 << 20))
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }
}
