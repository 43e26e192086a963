//! What `serve` and `torchserve` start: the listeners, the models and the service settings, from
//! the flags and environment, TorchServe's `config.properties` and `config.toml`, in that order of
//! precedence. `serve` listens where MAX did (0.0.0.0:5000) and serves the MAX model when no model
//! is named; `torchserve` listens where TorchServe does (127.0.0.1:8080, 8081 and 8082) and
//! serves only the models named, so that it can start empty.

use std::net::TcpListener;
use std::path::Path;

use anyhow::{bail, Context};
use max_mnist_api::ServiceSettings;

use crate::cli::{ServeArgs, TokenArgs, TorchServeArgs};
use crate::configuration::Settings;
use crate::models::{self, ModelToLoad};
use crate::tokens;
use crate::ts_config::{self, Address, TsConfig};

/// Everything a server start needs, before anything is bound or loaded.
#[derive(Debug)]
pub struct Launch {
    pub inference: Address,
    pub management: Option<Address>,
    pub metrics: Option<Address>,
    pub models: Vec<ModelToLoad>,
    pub service: ServiceSettings,
}

/// TorchServe's default listeners.
const TS_INFERENCE: u16 = 8080;
const TS_MANAGEMENT: u16 = 8081;
const TS_METRICS: u16 = 8082;
const LOOPBACK: &str = "127.0.0.1";

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn read_ts_config(path: Option<&Path>) -> anyhow::Result<Option<TsConfig>> {
    let Some(path) = path else {
        return Ok(None);
    };
    let config = TsConfig::read(path, &env)?;
    config.log(path);
    Ok(Some(config))
}

/// What both commands read first: `config.properties` (when named), the model store (the flag's,
/// config.properties', config.toml's), and the models named for the start: `listed` from the
/// command line (split as `--models` takes them), else config.properties'.
struct Sources {
    ts: Option<TsConfig>,
    store: std::path::PathBuf,
    named: Option<Vec<String>>,
}

fn sources(
    settings: &Settings,
    ts_config: Option<&Path>,
    store_flag: Option<&Path>,
    listed: Option<&[String]>,
) -> anyhow::Result<Sources> {
    let ts = read_ts_config(ts_config)?;
    let store = store_flag
        .map(Path::to_path_buf)
        .or_else(|| ts.as_ref().and_then(|ts| ts.model_store.clone()))
        .unwrap_or_else(|| settings.model_store.clone());
    let named = match (listed, &ts) {
        (Some(listed), _) => Some(ts_config::model_list(&listed.join(","), non_empty(&store))?),
        (None, Some(ts)) => ts.models(non_empty(&store))?,
        (None, None) => None,
    };
    Ok(Sources { ts, store, named })
}

/// `max-mnist serve`.
pub fn serve(settings: &Settings, args: ServeArgs) -> anyhow::Result<Launch> {
    let Sources { ts, store, named } = sources(
        settings,
        args.ts_config.as_deref(),
        args.model_store.as_deref(),
        args.models.as_deref(),
    )?;
    let ts = ts.as_ref();
    let models = models::to_load(
        settings,
        named.as_deref(),
        &store,
        args.weights.weights.as_deref(),
        true,
    )?;
    let file = |address: fn(&TsConfig) -> Option<&Address>| ts.and_then(address);
    let Some(inference) = layered(
        args.host.clone(),
        args.port,
        file(|ts| ts.inference_address.as_ref()),
        &settings.server.host,
        Some(settings.server.port),
    ) else {
        bail!("no inference port: set --port or server.port");
    };
    let management = layered(
        args.management_host.clone(),
        args.management_port,
        file(|ts| ts.management_address.as_ref()),
        &settings.server.management_host,
        settings.server.management_port,
    );
    let metrics = match args
        .metrics_address
        .as_deref()
        .or(settings.server.metrics_address.as_deref())
    {
        Some(flag) => Some(flag_address(flag)?),
        None => ts.and_then(|ts| ts.metrics_address.clone()),
    };
    let mut service = settings.service_settings(&store);
    apply(ts, &mut service, &args.tokens, false)?;
    if let Some(dir) = args.input_dir {
        service.input_dir = Some(dir);
    }
    if let Some(enabled) = args.cors_enable {
        service.cors.enabled = enabled;
    }
    if let Some(origins) = args.cors_origins {
        service.cors.origins = origins
            .into_iter()
            .map(|origin| origin.trim().to_owned())
            .filter(|origin| !origin.is_empty())
            .collect();
    }
    Ok(Launch {
        inference,
        management,
        metrics,
        models,
        service,
    })
}

/// A listener's address from its flags (`host`, `port`), else config.properties' (`file`), else
/// config.toml's; `None` when none of them gives a port (the listener is off).
fn layered(
    host: Option<String>,
    port: Option<u16>,
    file: Option<&Address>,
    config_host: &str,
    config_port: Option<u16>,
) -> Option<Address> {
    let port = port.or(file.map(|a| a.port)).or(config_port)?;
    let host = host
        .or_else(|| file.map(|a| a.host.clone()))
        .unwrap_or_else(|| config_host.to_owned());
    Some(Address { host, port })
}

/// `max-mnist torchserve …`.
pub fn torchserve(settings: &Settings, args: &TorchServeArgs) -> anyhow::Result<Launch> {
    if let Some(log_config) = &args.log_config {
        log::warn!(
            "--log-config {} is TorchServe's log4j2 file and is not read: set the log level with RUST_LOG (e.g. RUST_LOG=info)",
            log_config.display()
        );
    }
    for (flag, given) in [
        ("--cpp-log-config", args.cpp_log_config.is_some()),
        ("--workflow-store", args.workflow_store.is_some()),
        ("--plugins-path", args.plugins_path.is_some()),
    ] {
        if given {
            log::info!("{flag} accepted and ignored: this server has no C++ backends, workflows or Java plugins");
        }
    }
    let Sources { ts, store, named } = sources(
        settings,
        args.ts_config.as_deref(),
        args.model_store.as_deref(),
        args.models.as_deref(),
    )?;
    let ts = ts.as_ref();
    let models = models::to_load(settings, named.as_deref(), &store, None, false)?;
    let default = |port| Address {
        host: LOOPBACK.to_owned(),
        port,
    };
    let inference = ts
        .and_then(|ts| ts.inference_address.clone())
        .unwrap_or_else(|| default(TS_INFERENCE));
    let management = ts
        .and_then(|ts| ts.management_address.clone())
        .unwrap_or_else(|| default(TS_MANAGEMENT));
    let metrics = ts
        .and_then(|ts| ts.metrics_address.clone())
        .unwrap_or_else(|| default(TS_METRICS));
    let mut service = settings.service_settings(&store);
    apply(
        ts,
        &mut service,
        &TokenArgs::default(),
        args.disable_token_auth,
    )?;
    if args.enable_model_api {
        service.model_api = true;
    }
    Ok(Launch {
        inference,
        management: Some(management),
        metrics: Some(metrics),
        models,
        service,
    })
}

/// What `config.properties` says of workers, limits, CORS, tokens and the model API, over
/// `service` (from config.toml); `tokens` (flags and environment) over both.
fn apply(
    ts: Option<&TsConfig>,
    service: &mut ServiceSettings,
    tokens: &TokenArgs,
    tokens_disabled: bool,
) -> anyhow::Result<()> {
    let mut tokens = tokens.clone();
    if let Some(ts) = ts {
        if let Some(threads) = ts.netty_threads {
            service.limits.http_workers = Some(threads);
        }
        if let Some(workers) = ts.workers_per_model {
            service.limits.runners_per_model = workers;
        }
        if let Some(size) = ts.job_queue_size {
            service.limits.job_queue_size = size;
        }
        if let Some(size) = ts.max_request_size {
            service.limits.max_body_bytes = size;
        }
        if let Some(size) = ts.max_response_size {
            log::info!("max_response_size={size} accepted: answers here are bounded by limits.max_instances and are far smaller");
        }
        if let Some(enabled) = ts.enable_model_api {
            service.model_api = enabled;
        }
        if let Some(origin) = &ts.cors_allowed_origin {
            service.cors.enabled = true;
            service.cors.origins = origin
                .split(',')
                .map(str::trim)
                .filter(|origin| !origin.is_empty() && *origin != "*")
                .map(str::to_owned)
                .collect();
        }
        match ts.token_authorization {
            Some(true) if tokens.token_file.is_none() => match &ts.key_file {
                Some(file) => tokens.token_file = Some(file.clone()),
                None if tokens.inference_token.is_none() && tokens.management_token.is_none() => {
                    bail!("enable_token_authorization=true needs the tokens: set key_file=FILE (TorchServe's key_file.json) in config.properties, or --inference-token and --management-token")
                }
                None => {}
            },
            Some(false) => tokens = TokenArgs::default(),
            _ => {}
        }
    }
    service.auth = if tokens_disabled {
        max_mnist_api::AuthSettings::default()
    } else {
        tokens::auth_settings(&tokens)?
    };
    Ok(())
}

fn non_empty(path: &Path) -> Option<&Path> {
    Some(path).filter(|path| !path.as_os_str().is_empty())
}

/// `--metrics-address`: `http://HOST:PORT`, `HOST:PORT`, or a bare PORT on 127.0.0.1.
fn flag_address(flag: &str) -> anyhow::Result<Address> {
    let flag = flag.trim();
    if let Ok(port) = flag.parse::<u16>() {
        return Ok(Address {
            host: LOOPBACK.to_owned(),
            port,
        });
    }
    let text = if flag.contains("://") {
        flag.to_owned()
    } else {
        format!("http://{flag}")
    };
    ts_config::parse_address(&text).map_err(|why| {
        anyhow::anyhow!(
            "--metrics-address (env METRICS_ADDRESS) is `{flag}`: {why}; write [http://]HOST:PORT, or a PORT on 127.0.0.1"
        )
    })
}

/// Binds every listener; the management API shares the inference listener when both addresses
/// are the same, as TorchServe does.
pub fn bind(launch: &Launch) -> anyhow::Result<max_mnist_api::Listeners> {
    let inference = listen(&launch.inference, "the inference address")?;
    let shared = launch.management.as_ref() == Some(&launch.inference);
    let management = match &launch.management {
        Some(address) if !shared => Some(listen(address, "the management address")?),
        _ => None,
    };
    let metrics = match &launch.metrics {
        Some(address) => Some(listen(address, "the metrics address")?),
        None => None,
    };
    Ok(max_mnist_api::Listeners {
        inference: Some(inference),
        management,
        management_on_inference: shared,
        metrics,
    })
}

fn listen(address: &Address, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind((address.host.as_str(), address.port)).with_context(|| {
        format!("cannot listen on {address} ({what}): choose another address or port, or stop what uses it")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metrics_address_flag_takes_a_port_a_host_and_port_or_a_url() {
        let port = flag_address("8082").expect("a port");
        assert_eq!((port.host.as_str(), port.port), (LOOPBACK, 8082));
        let host = flag_address("0.0.0.0:9100").expect("host:port");
        assert_eq!((host.host.as_str(), host.port), ("0.0.0.0", 9100));
        let url = flag_address("http://[::1]:9").expect("a URL");
        assert_eq!((url.host.as_str(), url.port), ("::1", 9));
        let err = flag_address("https://0.0.0.0:1").expect_err("TLS");
        assert!(err.to_string().contains("--metrics-address"), "{err}");
        assert!(flag_address("0.0.0.0:port").is_err());
    }
}
