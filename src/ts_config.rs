//! TorchServe's `config.properties` (`--ts-config FILE`, env `TS_CONFIG_FILE`), read with its
//! keys and rules: `$$VAR$$` in a value is the environment variable's value; with
//! `enable_envvars_config=true`, a `TS_<KEY>` variable overrides the file's key. Keys that only a
//! Python or Java server needs are accepted and logged once as ignored; a key not known at all is
//! a warning naming it; a malformed value stops the start, naming the key and its line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

use crate::properties::{self, Property};

/// Keys this server acts on.
const USED: &[&str] = &[
    "inference_address",
    "management_address",
    "metrics_address",
    "model_store",
    "load_models",
    "models",
    "model_snapshot",
    "number_of_netty_threads",
    "default_workers_per_model",
    "job_queue_size",
    "max_request_size",
    "max_response_size",
    "disable_token_authorization",
    "enable_token_authorization",
    "key_file",
    "enable_model_api",
    "cors_allowed_origin",
    "service_envelope",
    "enable_envvars_config",
];

/// TorchServe's keys that only matter to its Python workers or its Java frontend.
const IGNORED: &[&str] = &[
    "debug",
    "blacklist_env_vars",
    "default_response_timeout",
    "default_startup_timeout",
    "unregister_model_timeout",
    "netty_client_threads",
    "number_of_gpu",
    "metrics_config",
    "metrics_mode",
    "metrics_format",
    "model_metrics_auto_detect",
    "disable_system_metrics",
    "ipex_enable",
    "cpu_launcher_enable",
    "cpu_launcher_args",
    "ipex_gpu_enable",
    "async_logging",
    "cors_allowed_methods",
    "cors_allowed_headers",
    "decode_input_request",
    "limit_max_image_pixels",
    "default_service_handler",
    "model_server_home",
    "prefer_direct_buffer",
    "allowed_urls",
    "use_env_allowed_urls",
    "install_py_dep_per_model",
    "enable_metrics_api",
    "grpc_inference_address",
    "grpc_management_address",
    "grpc_inference_port",
    "grpc_management_port",
    "grpc_inference_max_connection_age_ms",
    "grpc_management_max_connection_age_ms",
    "grpc_inference_max_connection_age_grace_ms",
    "grpc_management_max_connection_age_grace_ms",
    "enable_grpc_ssl",
    "initial_worker_port",
    "initial_distribution_port",
    "workflow_store",
    "cpp_log_config",
    "ts_open_inference_protocol",
    "token_expiration_min",
    "ts_header_key_sequence_id",
    "ts_header_key_sequence_start",
    "ts_header_key_sequence_end",
    "use_native_io",
    "io_ratio",
    "metric_time_interval",
    "version",
    "system_metrics_cmd",
    "vmargs",
    "NUM_WORKERS",
    "plugins_path",
    "python",
];

/// Keys whose `TS_` variable is not simply `TS_` and the key in capitals.
const ENV_NAMES: &[(&str, &str)] = &[("ts_open_inference_protocol", "TS_OPEN_INFERENCE_PROTOCOL")];

/// `http://host:port`, as TorchServe's `*_address` keys give a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "http://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "http://{}:{}", self.host, self.port)
        }
    }
}

/// One model of a `model_snapshot`: its name, and the archive in the model store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotModel {
    pub name: String,
    pub version: String,
    pub mar_name: String,
}

/// What a `config.properties` says, typed; `None`: the file does not say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TsConfig {
    pub inference_address: Option<Address>,
    pub management_address: Option<Address>,
    pub metrics_address: Option<Address>,
    pub model_store: Option<PathBuf>,
    /// `load_models` (or `--models`), comma-separated as TorchServe joins them.
    pub load_models: Option<String>,
    pub snapshot: Option<Vec<SnapshotModel>>,
    pub netty_threads: Option<usize>,
    pub workers_per_model: Option<usize>,
    pub job_queue_size: Option<usize>,
    pub max_request_size: Option<usize>,
    pub max_response_size: Option<usize>,
    /// `true` when the file turns token authorisation on (`enable_token_authorization=true`,
    /// `disable_token_authorization=false` with a `key_file`), `false` when it turns it off.
    pub token_authorization: Option<bool>,
    pub key_file: Option<PathBuf>,
    pub enable_model_api: Option<bool>,
    pub cors_allowed_origin: Option<String>,
    pub service_envelope: Option<String>,
    /// The keys accepted but not acted on, and those not known at all (with their lines).
    pub ignored: Vec<String>,
    pub unknown: Vec<(String, usize)>,
}

/// Where a value came from, for the error that names it.
struct Origin<'a> {
    file: &'a Path,
    line: usize,
    variable: Option<String>,
}

impl std::fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.variable {
            Some(variable) => write!(f, "environment variable {variable}"),
            None => write!(f, "{} line {}", self.file.display(), self.line),
        }
    }
}

impl TsConfig {
    /// Reads `file`, with `env` as the process environment.
    pub fn read(file: &Path, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(file).with_context(|| {
            format!(
                "cannot read the TorchServe configuration {} (--ts-config, env TS_CONFIG_FILE)",
                file.display()
            )
        })?;
        Self::parse(&text, file, env)
    }

    pub fn parse(
        text: &str,
        file: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let mut entries: BTreeMap<String, (String, Origin)> = BTreeMap::new();
        for Property { key, value, line } in properties::parse(text) {
            let origin = Origin {
                file,
                line,
                variable: None,
            };
            let value = substitute(&value, env).with_context(|| format!("`{key}` at {origin}"))?;
            entries.insert(key, (value, origin));
        }
        let envvars = match entries.get("enable_envvars_config") {
            Some((value, origin)) => boolean("enable_envvars_config", value, origin)?,
            None => false,
        };
        if envvars {
            for key in USED.iter().chain(IGNORED) {
                let variable = env_name(key);
                if let Some(value) = env(&variable) {
                    let origin = Origin {
                        file,
                        line: 0,
                        variable: Some(variable),
                    };
                    entries.insert((*key).to_owned(), (value, origin));
                }
            }
        }
        let mut config = Self::default();
        for (key, (value, origin)) in &entries {
            config.take(key, value, origin)?;
        }
        Ok(config)
    }

    fn take(&mut self, key: &str, value: &str, origin: &Origin) -> anyhow::Result<()> {
        match key {
            "inference_address" => self.inference_address = Some(address(key, value, origin)?),
            "management_address" => self.management_address = Some(address(key, value, origin)?),
            "metrics_address" => self.metrics_address = Some(address(key, value, origin)?),
            "model_store" => self.model_store = Some(PathBuf::from(value)),
            "load_models" => self.load_models = Some(value.to_owned()),
            "models" => check_model_config(value, origin)?,
            "model_snapshot" => self.snapshot = Some(snapshot(value, origin)?),
            "number_of_netty_threads" => self.netty_threads = count(key, value, origin)?,
            "default_workers_per_model" => self.workers_per_model = count(key, value, origin)?,
            "job_queue_size" => self.job_queue_size = count(key, value, origin)?,
            "max_request_size" => self.max_request_size = count(key, value, origin)?,
            "max_response_size" => self.max_response_size = count(key, value, origin)?,
            "disable_token_authorization" => {
                if boolean(key, value, origin)? {
                    self.token_authorization = Some(false);
                }
            }
            "enable_token_authorization" => {
                self.token_authorization = Some(boolean(key, value, origin)?);
            }
            "key_file" => self.key_file = Some(PathBuf::from(value)),
            "enable_model_api" => self.enable_model_api = Some(boolean(key, value, origin)?),
            "cors_allowed_origin" => self.cors_allowed_origin = Some(value.trim().to_owned()),
            "service_envelope" => self.service_envelope = Some(value.to_owned()),
            "enable_envvars_config" => {}
            key if IGNORED.contains(&key) => self.ignored.push(key.to_owned()),
            key => self.unknown.push((key.to_owned(), origin.line)),
        }
        Ok(())
    }

    /// One line for what is ignored, one warning per unknown key, one note on the envelope.
    pub fn log(&self, file: &Path) {
        if !self.ignored.is_empty() {
            log::info!(
                "{}: accepted and ignored (they configure TorchServe's Python workers or Java frontend): {}",
                file.display(),
                self.ignored.join(", ")
            );
        }
        for (key, line) in &self.unknown {
            log::warn!(
                "{} line {line}: `{key}` is not a TorchServe setting this server knows; it is ignored (check its spelling)",
                file.display()
            );
        }
        if let Some(envelope) = &self.service_envelope {
            log::info!(
                "service_envelope `{envelope}` accepted: every protocol (TorchServe, KServe v1 and v2, MAX) is served on every model anyway"
            );
        }
    }

    /// The models `load_models` and `model_snapshot` name, as `NAME=FILE` or `FILE` entries; `all`
    /// (any case) lists the store's archives. `None`: the file names none.
    pub fn models(&self, store: Option<&Path>) -> anyhow::Result<Option<Vec<String>>> {
        if let Some(snapshot) = &self.snapshot {
            return Ok(Some(
                snapshot
                    .iter()
                    .map(|model| format!("{}={}", model.name, model.mar_name))
                    .collect(),
            ));
        }
        let Some(load) = &self.load_models else {
            return Ok(None);
        };
        model_list(load, store).map(Some)
    }
}

/// `--models` / `load_models` entries: comma-separated, `ALL` for every archive in the store.
pub fn model_list(load: &str, store: Option<&Path>) -> anyhow::Result<Vec<String>> {
    if load.trim().eq_ignore_ascii_case("all") {
        let Some(store) = store else {
            bail!("load_models=all needs a model store: set model_store or --model-store");
        };
        let mut archives: Vec<String> = std::fs::read_dir(store)
            .with_context(|| format!("cannot list the model store {}", store.display()))?
            .filter_map(Result::ok)
            .filter(|entry| entry.path().is_file())
            .filter_map(|entry| entry.file_name().into_string().ok())
            .filter(|name| !name.starts_with('.') && name.ends_with(".mar"))
            .collect();
        archives.sort();
        return Ok(archives);
    }
    Ok(load
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(str::to_owned)
        .collect())
}

fn env_name(key: &str) -> String {
    ENV_NAMES.iter().find(|(name, _)| *name == key).map_or_else(
        || format!("TS_{}", key.to_uppercase()),
        |(_, var)| (*var).to_owned(),
    )
}

/// `$$VAR$$` replaced by the variable's value, as TorchServe's `resolveEnvVarVals` does.
fn substitute(value: &str, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("$$") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("$$").filter(|&end| end >= 2) else {
            break;
        };
        let name = &after[..end];
        if name.contains('$') {
            break;
        }
        let Some(resolved) = env(name) else {
            bail!("names the environment variable {name} in $${name}$$, which is not set: set it, or write the value itself");
        };
        out.push_str(&rest[..start]);
        out.push_str(&resolved);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn boolean(key: &str, value: &str, origin: &Origin) -> anyhow::Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => bail!("{origin}: `{key}` is `{value}`: write true or false"),
    }
}

/// A whole number; 0 means "the default", as TorchServe reads these keys.
fn count(key: &str, value: &str, origin: &Origin) -> anyhow::Result<Option<usize>> {
    match value.trim().parse::<usize>() {
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(n)),
        Err(_) => bail!("{origin}: `{key}` is `{value}`: write a whole number (0 for the default)"),
    }
}

/// A `*_address` key.
fn address(key: &str, value: &str, origin: &Origin) -> anyhow::Result<Address> {
    parse_address(value).map_err(|why| {
        anyhow::anyhow!(
            "{origin}: `{key}` is `{value}`: {why}; write it as http://HOST:PORT, e.g. http://127.0.0.1:8080"
        )
    })
}

/// `http://host:port` or `http://host` (port 80), as TorchServe's `Connector.parse` takes them;
/// the error says what is wrong with it.
pub fn parse_address(value: &str) -> Result<Address, &'static str> {
    let (scheme, rest) = value.trim().split_once("://").ok_or("no http:// scheme")?;
    match scheme.to_ascii_lowercase().as_str() {
        "http" => {}
        "https" => {
            return Err("this server does not terminate TLS (put a TLS proxy such as the ingress in front of it and use http)")
        }
        "unix" => return Err("Unix-domain sockets are not served"),
        _ => return Err("the scheme is not http"),
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or("an IPv6 address without its closing ]")?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("no host");
    }
    let port = match port {
        Some(port) => port
            .parse::<u16>()
            .map_err(|_| "the port is not a number from 0 to 65535")?,
        None => 80,
    };
    Ok(Address {
        host: host.to_owned(),
        port,
    })
}

/// The `models` key: per-model settings as JSON (`{"mnist": {"1.0": {"minWorkers": 1, …}}}`).
/// Workers and batching here follow `default_workers_per_model`, so the value is only checked.
fn check_model_config(value: &str, origin: &Origin) -> anyhow::Result<()> {
    serde_json::from_str::<BTreeMap<String, BTreeMap<String, serde_json::Value>>>(value)
        .map(drop)
        .map_err(|err| {
            anyhow::anyhow!(
                "{origin}: `models` is not TorchServe's per-model JSON ({err}): write {{\"NAME\": {{\"VERSION\": {{\"minWorkers\": 1}}}}}}"
            )
        })
}

#[derive(Deserialize)]
struct Snapshot {
    models: BTreeMap<String, BTreeMap<String, SnapshotVersion>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SnapshotVersion {
    mar_name: String,
    #[serde(default)]
    default_version: bool,
}

/// The models of a `model_snapshot` (the JSON KServe writes), one version each: the default
/// version, else the only one.
fn snapshot(value: &str, origin: &Origin) -> anyhow::Result<Vec<SnapshotModel>> {
    let parsed: Snapshot = serde_json::from_str(value).map_err(|err| {
        anyhow::anyhow!(
            "{origin}: `model_snapshot` is not TorchServe's snapshot JSON ({err}): write {{\"name\":\"startup.cfg\",\"modelCount\":1,\"models\":{{\"mnist\":{{\"1.0\":{{\"defaultVersion\":true,\"marName\":\"mnist.mar\"}}}}}}}}"
        )
    })?;
    let mut models = Vec::new();
    for (name, versions) in parsed.models {
        let chosen = versions
            .iter()
            .find(|(_, version)| version.default_version)
            .or_else(|| {
                (versions.len() == 1)
                    .then(|| versions.iter().next())
                    .flatten()
            });
        let Some((version, settings)) = chosen else {
            bail!(
                "{origin}: `model_snapshot` gives model `{name}` {} versions and none is the default: mark one \"defaultVersion\":true",
                versions.len()
            );
        };
        models.push(SnapshotModel {
            name,
            version: version.clone(),
            mar_name: settings.mar_name.clone(),
        });
    }
    Ok(models)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(text: &str) -> anyhow::Result<TsConfig> {
        TsConfig::parse(text, Path::new("config.properties"), &no_env)
    }

    #[test]
    fn the_kserve_guide_config_is_read() {
        let config = parse(
            "inference_address=http://127.0.0.1:8085\nmanagement_address=http://127.0.0.1:8081\nnumber_of_netty_threads=4\njob_queue_size=10\nenable_envvars_config=true\nmodel_store=model_store\n",
        )
        .expect("reads");
        assert_eq!(
            config.inference_address,
            Some(Address {
                host: "127.0.0.1".into(),
                port: 8085
            })
        );
        assert_eq!(config.management_address.map(|a| a.port), Some(8081));
        assert_eq!(config.netty_threads, Some(4));
        assert_eq!(config.job_queue_size, Some(10));
        assert_eq!(config.model_store, Some(PathBuf::from("model_store")));
        assert!(config.unknown.is_empty() && config.ignored.is_empty());
    }

    #[test]
    fn the_snapshot_kserve_writes_names_the_models() {
        let config = parse(
            "model_snapshot={\"name\":\"startup.cfg\",\"modelCount\":1,\"models\":{\"mnist\":{\"1.0\":{\"defaultVersion\":true,\"marName\":\"mnist.mar\",\"minWorkers\":1,\"maxWorkers\":5,\"batchSize\":1,\"maxBatchDelay\":5000,\"responseTimeout\":120}}}}\nNUM_WORKERS=1\ninstall_py_dep_per_model=true\nfoo_bar=1\n",
        )
        .expect("reads");
        assert_eq!(
            config.models(None).expect("models"),
            Some(vec!["mnist=mnist.mar".to_owned()])
        );
        assert_eq!(config.ignored, ["NUM_WORKERS", "install_py_dep_per_model"]);
        assert_eq!(config.unknown, [("foo_bar".to_owned(), 4)]);
    }

    #[test]
    fn malformed_values_name_the_key_and_the_line() {
        for (text, expected) in [
            (
                "\njob_queue_size=ten\n",
                "config.properties line 2: `job_queue_size` is `ten`",
            ),
            ("inference_address=127.0.0.1:8080", "no http:// scheme"),
            (
                "inference_address=https://0.0.0.0:8443",
                "does not terminate TLS",
            ),
            (
                "metrics_address=http://0.0.0.0:99999",
                "the port is not a number",
            ),
            (
                "enable_model_api=yes",
                "`enable_model_api` is `yes`: write true or false",
            ),
            (
                "model_snapshot={\"models\":",
                "not TorchServe's snapshot JSON",
            ),
            ("models={bad", "not TorchServe's per-model JSON"),
            ("model_store=$$NO_SUCH_VARIABLE$$", "NO_SUCH_VARIABLE"),
        ] {
            let err = format!("{:#}", parse(text).expect_err(text));
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn environment_variables_override_only_when_enabled_and_fill_placeholders() {
        let env = |name: &str| match name {
            "TS_INFERENCE_ADDRESS" => Some("http://0.0.0.0:9000".to_owned()),
            "STORE" => Some("/mnt/models/model-store".to_owned()),
            _ => None,
        };
        let text = "inference_address=http://127.0.0.1:8080\nmodel_store=$$STORE$$\n";
        let off = TsConfig::parse(text, Path::new("c"), &env).expect("reads");
        assert_eq!(off.inference_address.map(|a| a.port), Some(8080));
        assert_eq!(
            off.model_store,
            Some(PathBuf::from("/mnt/models/model-store"))
        );
        let on = TsConfig::parse(
            &format!("{text}enable_envvars_config=true\n"),
            Path::new("c"),
            &env,
        )
        .expect("reads");
        assert_eq!(on.inference_address.map(|a| a.port), Some(9000));
    }

    #[test]
    fn load_models_lists_names_files_and_the_whole_store() {
        let store = tempfile::tempdir().expect("dir");
        for file in ["b.mar", "a.mar", "notes.txt", ".hidden.mar"] {
            std::fs::write(store.path().join(file), b"x").expect("write");
        }
        assert_eq!(
            model_list("ALL", Some(store.path())).expect("all"),
            ["a.mar", "b.mar"]
        );
        assert_eq!(
            model_list("mnist=mnist.mar, titanic.mar,,", None).expect("list"),
            ["mnist=mnist.mar", "titanic.mar"]
        );
        assert!(model_list("", None).expect("empty").is_empty());
        assert!(model_list("all", None).is_err());
    }
}
