//! `max-mnist`: serve, fetch and verify assets, check health, predict offline.

use std::net::TcpListener;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use max_mnist_api::{Application, Listeners, LoadedModel, ServiceSettings};

use max_mnist::cli::{Cli, Command, ServeArgs, TorchServeArgs};
use max_mnist::configuration::Settings;
use max_mnist::launch::{self, Launch};
use max_mnist::{assets, checksums, daemon, models, predict};

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
    max_mnist_core::onnx::runtime::configure_library(Some(settings.onnx.runtime_library.clone()));
    match cli.command {
        None => serve(&settings, cli.serve),
        Some(Command::Serve(args)) => serve(&settings, args),
        Some(Command::Torchserve(args)) => torchserve(&settings, &args),
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
                true,
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
    let launch = launch::serve(settings, args)?;
    run_server(launch)
}

/// `max-mnist torchserve`: stop, start in the background, or serve in the foreground.
fn torchserve(settings: &Settings, args: &TorchServeArgs) -> anyhow::Result<ExitCode> {
    if args.stop {
        return daemon::stop();
    }
    let launch = launch::torchserve(settings, args)?;
    if !args.foreground {
        return daemon::start_in_background(&launch.inference);
    }
    daemon::check_not_running()?;
    let _pid = daemon::write_pid();
    run_server(launch)
}

fn run_server(launch: Launch) -> anyhow::Result<ExitCode> {
    let loaded = models::load_all(&launch.models, &launch.service.load_limits)?;
    let listeners = launch::bind(&launch)?;
    log_start(&loaded, &launch.service, &listeners)?;
    let service = launch.service;
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(listeners, loaded, service)?;
        app.run_until_stopped().await
    })?;
    log::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// The models, the addresses, and what is left open.
fn log_start(
    loaded: &[LoadedModel],
    service: &ServiceSettings,
    listeners: &Listeners,
) -> std::io::Result<()> {
    for model in loaded {
        let info = model.model.info();
        log::info!(
            "model `{}` version {}: {} ({}) from {}",
            info.name,
            info.version,
            info.network.name,
            info.network.origin,
            model.url
        );
    }
    if loaded.is_empty() {
        log::info!(
            "no model loaded: register one through the management API (POST /models?url=FILE.mar)"
        );
    }
    let management = match (&listeners.management, listeners.management_on_inference) {
        (Some(listener), _) => Some(listener.local_addr()?),
        (None, true) => listeners
            .inference
            .as_ref()
            .map(TcpListener::local_addr)
            .transpose()?,
        (None, false) => None,
    };
    if let Some(address) = management {
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
    if let Some(metrics) = &listeners.metrics {
        log::info!("metrics on http://{}/metrics", metrics.local_addr()?);
    }
    for (api, token) in [
        ("inference", &service.auth.inference),
        ("management", &service.auth.management),
    ] {
        if token.is_some() {
            log::info!("the {api} API asks for its bearer token");
        }
    }
    if let Some(inference) = &listeners.inference {
        log::info!(
            "serving on http://{} (Swagger UI at /)",
            inference.local_addr()?
        );
    }
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
