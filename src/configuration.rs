//! Typed settings, layered: flags > environment (both via clap) > `config.toml` > the defaults,
//! which are the `config.toml` shipped with the source.

use max_mnist_core::architectures::my_convnet::MyConvNet;
use max_mnist_core::Architecture;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use max_mnist_api::{
    ApiInfo, AuthSettings, CorsSettings, MaxModelMetadata, RequestLimits, ServiceSettings,
};
use max_mnist_core::{ImageLimits, LoadLimits};
use serde::Deserialize;

const DEFAULT_CONFIG: &str = include_str!("../config.toml");
const DEFAULT_CONFIG_PATH: &str = "config.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where a relative model path is looked up (empty: the working directory).
    pub model_store: PathBuf,
    /// The models to serve; none: the MAX model of `[model]`.
    #[serde(default)]
    pub models: Vec<ConfiguredModel>,
    pub server: ServerSettings,
    pub model: MaxModelSettings,
    pub metadata: MaxModelMetadata,
    pub api: ApiInfo,
    pub assets: AssetSettings,
    pub limits: LimitSettings,
    #[serde(default)]
    pub onnx: OnnxSettings,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnnxSettings {
    /// ONNX Runtime's shared library (empty: `ORT_DYLIB_PATH`, else an installed onnxruntime wheel).
    #[serde(default)]
    pub runtime_library: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub cors_enable: bool,
    pub cors_origins: Vec<String>,
    /// Where `{"input_file_path": …}` may read CSV files (empty: nowhere).
    pub input_dir: PathBuf,
    /// The management API's address.
    pub management_host: String,
    /// The management API's port; none: the API is off.
    #[serde(default)]
    pub management_port: Option<u16>,
    /// `[http://]HOST:PORT` of a listener that serves only `/metrics`; none: off.
    #[serde(default)]
    pub metrics_address: Option<String>,
    /// HTTP worker threads per listener; 0: one per core the process may use.
    pub workers: usize,
    /// Whether the management API registers and unregisters models.
    pub model_api: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxModelSettings {
    pub weights: PathBuf,
    pub name: String,
    pub version: String,
}

/// One `[[models]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfiguredModel {
    /// The name routes know it by; default: the `.mar` manifest's, else the file's stem.
    pub name: Option<String>,
    /// A `.mar` archive or a weights file, relative to `model_store` unless absolute.
    pub path: PathBuf,
    /// Default: the `.mar` manifest's, else "1.0".
    pub version: Option<String>,
    /// What the network file cannot say (handler, outputs, pre-processing, feature names); they
    /// win over a `.mar`'s `max-mnist.toml`.
    #[serde(default)]
    pub settings: max_mnist_core::ModelSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetSettings {
    pub bucket: String,
    pub file: String,
    pub dest: PathBuf,
    pub checksums: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    pub max_body_bytes: usize,
    pub max_multipart_parts: usize,
    /// 0: one per core the process may use.
    #[serde(alias = "max_concurrent_decodes")]
    pub runners_per_model: usize,
    pub decoder_budget_bytes: u64,
    pub job_queue_size: usize,
    pub max_json_depth: usize,
    pub max_instances: usize,
    pub max_image_pixels: u64,
    pub max_image_side: u32,
    pub max_decoder_bytes: u64,
    pub max_model_bytes: u64,
    pub request_timeout_secs: u64,
    pub keep_alive_secs: u64,
}

impl Settings {
    /// Reads `path` over the defaults. Without `path`, `./config.toml` is read when there is one.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let mut merged: toml::Table =
            toml::from_str(DEFAULT_CONFIG).context("the built-in defaults")?;
        let path = path.or_else(|| Some(Path::new(DEFAULT_CONFIG_PATH)).filter(|p| p.exists()));
        if let Some(path) = path {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!("cannot read the configuration file {}", path.display())
            })?;
            let overrides: toml::Table = toml::from_str(&text)
                .with_context(|| format!("{} is not valid TOML", path.display()))?;
            merge(&mut merged, overrides);
        }
        merged
            .try_into()
            .context("invalid configuration: see config.toml for the settings and their types")
    }

    pub fn load_limits(&self) -> LoadLimits {
        LoadLimits {
            max_model_bytes: self.limits.max_model_bytes,
            image: ImageLimits {
                max_image_pixels: self.limits.max_image_pixels,
                max_image_side: self.limits.max_image_side,
                max_decoder_bytes: self.limits.max_decoder_bytes,
            },
        }
    }

    /// The service settings; the management API registers models from `model_store` (none when
    /// it is empty: the working directory is no store).
    pub fn service_settings(&self, model_store: &Path) -> ServiceSettings {
        ServiceSettings {
            metadata: self.metadata.clone(),
            metadata_network: MyConvNet.network().name,
            model_store: Some(model_store.to_owned()).filter(|d| !d.as_os_str().is_empty()),
            load_limits: self.load_limits(),
            auth: AuthSettings::default(),
            input_dir: Some(self.server.input_dir.clone()).filter(|d| !d.as_os_str().is_empty()),
            api: self.api.clone(),
            cors: CorsSettings {
                enabled: self.server.cors_enable,
                origins: self.server.cors_origins.clone(),
            },
            limits: RequestLimits {
                max_body_bytes: self.limits.max_body_bytes,
                max_multipart_parts: self.limits.max_multipart_parts,
                runners_per_model: match self.limits.runners_per_model {
                    0 => available_cores(),
                    runners => runners,
                },
                decoder_budget_bytes: self.limits.decoder_budget_bytes,
                job_queue_size: self.limits.job_queue_size,
                http_workers: Some(self.server.workers).filter(|&n| n > 0),
                max_json_depth: self.limits.max_json_depth,
                max_instances: self.limits.max_instances,
                request_timeout: Duration::from_secs(self.limits.request_timeout_secs),
                keep_alive: Duration::from_secs(self.limits.keep_alive_secs),
            },
            model_api: self.server.model_api,
        }
    }
}

/// The cores this process may use (`taskset`, cgroup quotas), as the standard library counts them.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Deep merge: tables merge key by key, anything else is replaced.
fn merge(base: &mut toml::Table, overrides: toml::Table) {
    for (key, value) in overrides {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base)), toml::Value::Table(value)) => merge(base, value),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_config_is_the_default() {
        let settings = Settings::load(Some(Path::new("config.toml"))).expect("config.toml parses");
        assert_eq!(settings.server.port, 5000);
        assert_eq!(settings.metadata.kind, "Image Classification");
        assert!(settings.models.is_empty());
    }

    #[test]
    fn models_can_be_listed_in_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("models.toml");
        std::fs::write(
            &path,
            "model_store = \"store\"\n[[models]]\nname = \"mnist\"\npath = \"mnist.mar\"\n\n[[models]]\npath = \"max.pt\"\nversion = \"2\"\n[models.settings]\nhandler = \"image_classifier\"\n[models.settings.image]\nresize = 300\n",
        )
        .expect("write");
        let settings = Settings::load(Some(&path)).expect("loads");
        assert_eq!(settings.model_store, Path::new("store"));
        assert_eq!(
            settings.models,
            [
                ConfiguredModel {
                    name: Some("mnist".into()),
                    path: "mnist.mar".into(),
                    version: None,
                    settings: max_mnist_core::ModelSettings::default(),
                },
                ConfiguredModel {
                    name: None,
                    path: "max.pt".into(),
                    version: Some("2".into()),
                    settings: max_mnist_core::ModelSettings {
                        handler: Some("image_classifier".into()),
                        image: max_mnist_core::model_settings::ImageSettings {
                            resize: Some(300),
                            ..Default::default()
                        },
                        ..Default::default()
                    },
                },
            ]
        );
    }

    #[test]
    fn a_partial_file_overrides_only_what_it_names() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("partial.toml");
        std::fs::write(
            &path,
            "[server]\nport = 8080\n[metadata]\nname = \"Mine\"\n",
        )
        .expect("write");
        let settings = Settings::load(Some(&path)).expect("loads");
        assert_eq!(settings.server.port, 8080);
        assert_eq!(settings.server.host, "0.0.0.0");
        assert_eq!(settings.metadata.name, "Mine");
        assert_eq!(settings.metadata.id, "max-pytorch-mnist");
    }

    #[test]
    fn a_typo_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("typo.toml");
        std::fs::write(&path, "[server]\nprot = 8080\n").expect("write");
        let err = Settings::load(Some(&path)).expect_err("unknown key");
        assert!(format!("{err:#}").contains("prot"), "{err:#}");
    }

    #[test]
    fn a_missing_named_file_is_an_error() {
        assert!(Settings::load(Some(Path::new("/nonexistent/max-mnist.toml"))).is_err());
    }
}
