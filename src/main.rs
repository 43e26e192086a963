//! `max-mnist`: serve, fetch and verify assets, check health, predict offline.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use max_mnist_api::{Application, Listeners, LoadedModel, ServiceSettings};

use max_mnist::cli::{Cli, Command, ServeArgs};
use max_mnist::configuration::Settings;
use max_mnist::{assets, checksums, models, predict, tokens};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
        None => serve(&settings, cli.serve),
        Some(Command::Serve(args)) => serve(&settings, args),
        Some(Command::FetchAssets(args)) => {
            let file = args.file.unwrap_or_else(|| settings.assets.file.clone());
            assets::fetch(&assets::FetchRequest {
                bucket: assets::source_bucket(
                    args.bucket,
                    args.asset_cache.as_deref(),
                    &settings.assets.bucket,
                    &file,
                ),
                file,
                dest: args.dest.unwrap_or_else(|| settings.assets.dest.clone()),
                checksums: args
                    .checksums
                    .checksums
                    .unwrap_or_else(|| settings.assets.checksums.clone()),
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::VerifyAssets(args)) => {
            let checksums = args
                .checksums
                .checksums
                .unwrap_or_else(|| settings.assets.checksums.clone());
            checksums::verify(&checksums, args.skip_missing)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Healthcheck(args)) => {
            healthcheck(&args.host, args.port.unwrap_or(settings.server.port))
        }
        Some(Command::Predict(args)) => {
            let to_load = models::to_load(
                &settings,
                None,
                &settings.model_store,
                args.weights.weights.as_deref(),
            )?;
            let loaded = models::load_all(&to_load, &settings.load_limits())?;
            let model = loaded
                .first()
                .context("no model to predict with")?
                .model
                .clone();
            Ok(predict::run(model.as_ref(), &args.files))
        }
    }
}

fn serve(settings: &Settings, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let store: PathBuf = args
        .model_store
        .clone()
        .unwrap_or_else(|| settings.model_store.clone());
    let to_load = models::to_load(
        settings,
        args.models.as_deref(),
        &store,
        args.weights.weights.as_deref(),
    )?;
    let auth = tokens::auth_settings(&args.tokens)?;
    let loaded = models::load_all(&to_load, &settings.load_limits())?;
    let mut service = settings.service_settings(&store);
    service.auth = auth;
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
    let host = args.host.unwrap_or_else(|| settings.server.host.clone());
    let port = args.port.unwrap_or(settings.server.port);
    let inference = TcpListener::bind((host.as_str(), port))
        .with_context(|| format!("cannot listen on {host}:{port}; choose another --port"))?;
    let management = match args.management_port.or(settings.server.management_port) {
        Some(port) => {
            let host = args
                .management_host
                .unwrap_or_else(|| settings.server.management_host.clone());
            let listener = TcpListener::bind((host.as_str(), port)).with_context(|| {
                format!("cannot listen on {host}:{port}; choose another --management-port")
            })?;
            Some(listener)
        }
        None => None,
    };
    log_start(&loaded, &service, &inference, management.as_ref())?;
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(
            Listeners {
                inference,
                management,
            },
            loaded,
            service,
        )?;
        app.run_until_stopped().await
    })?;
    log::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// The models, the addresses, and what is left open.
fn log_start(
    loaded: &[LoadedModel],
    service: &ServiceSettings,
    inference: &TcpListener,
    management: Option<&TcpListener>,
) -> std::io::Result<()> {
    for model in loaded {
        let info = model.model.info();
        log::info!(
            "model `{}` version {}: {} ({}) from {}",
            info.name,
            info.version,
            info.architecture.name(),
            info.architecture.origin(),
            model.url
        );
    }
    if let Some(management) = management {
        let address = management.local_addr()?;
        log::info!("management API on http://{address}");
        if service.auth.management.is_none() && !address.ip().is_loopback() {
            log::warn!(
                "the management API listens on {address} without a token: anyone who reaches it can register and unregister models; set --management-token (env MANAGEMENT_TOKEN)"
            );
        }
        if service.model_store.is_none() {
            log::warn!("no model store is set, so the management API cannot register models: set --model-store (env MODEL_STORE)");
        }
    }
    for (api, token) in [
        ("inference", &service.auth.inference),
        ("management", &service.auth.management),
    ] {
        if token.is_some() {
            log::info!("the {api} API asks for its bearer token");
        }
    }
    log::info!(
        "serving on http://{} (Swagger UI at /)",
        inference.local_addr()?
    );
    Ok(())
}

fn healthcheck(host: &str, port: u16) -> anyhow::Result<ExitCode> {
    let url = format!("http://{host}:{port}/ping");
    let response = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()?
        .get(&url)
        .send()
        .with_context(|| format!("{url} does not answer"))?;
    if response.status().is_success() {
        Ok(ExitCode::SUCCESS)
    } else {
        anyhow::bail!("{url} answered {}", response.status())
    }
}
