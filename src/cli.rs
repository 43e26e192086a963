//! The command line. Every flag that has an environment variable says so in `--help`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "max-mnist",
    version,
    about = "Serve a handwritten-digit classifier, MAX-style"
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// Settings file (flags and environment variables take precedence over it).
    #[arg(long, global = true, env = "MAX_MNIST_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// `serve`'s flags, for when no command is given.
    #[command(flatten)]
    pub serve: ServeArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (the default command).
    Serve(ServeArgs),
    /// Download the weights archive, unpack it and verify its SHA-512 checksums.
    FetchAssets(FetchArgs),
    /// Verify the assets against the checksum file.
    VerifyAssets(VerifyArgs),
    /// Exit 0 when the server answers /ping (for Docker's HEALTHCHECK).
    Healthcheck(HealthcheckArgs),
    /// Classify image files offline: one JSON line per file.
    Predict(PredictArgs),
    /// TorchServe's command line, for scripts written for it: `max-mnist torchserve --start
    /// --model-store model_store --ncs --models mnist=mnist.mar --ts-config config.properties`.
    /// Listens where TorchServe does (8080, 8081, 8082 on 127.0.0.1) unless config.properties says
    /// otherwise, and serves only the models named (none: an empty start).
    Torchserve(TorchServeArgs),
}

#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "HOST")]
    pub host: Option<String>,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "PORT")]
    pub port: Option<u16>,
    /// Allow cross-origin requests (true/false), as MAX's CORS_ENABLE.
    #[arg(long, env = "CORS_ENABLE", value_name = "BOOL", value_parser = clap::builder::BoolishValueParser::new())]
    pub cors_enable: Option<bool>,
    /// Only these origins, comma-separated (default: any origin).
    #[arg(
        long,
        env = "CORS_ORIGINS",
        value_name = "ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Option<Vec<String>>,
    /// Models to serve, as `torchserve --models`: NAME=PATH or PATH (the name then comes from the
    /// .mar manifest or the file), space- or comma-separated. PATH is a TorchServe .mar or a
    /// weights file. The first also answers the MAX routes. Default: the MAX model (--weights).
    #[arg(long, env = "MODELS", value_name = "NAME=PATH", value_delimiter = ',', num_args = 1..)]
    pub models: Option<Vec<String>>,
    /// Where a relative model PATH is looked up.
    #[arg(long, env = "MODEL_STORE", value_name = "DIR")]
    pub model_store: Option<PathBuf>,
    /// The only directory TorchServe's `{"input_file_path": [...]}` may read CSV files from
    /// (default: such requests are refused).
    #[arg(long, env = "INPUT_DIR", value_name = "DIR")]
    pub input_dir: Option<PathBuf>,
    /// Serve TorchServe's management API (register, unregister, describe, scale models) and
    /// KServe v2's model repository extension on this port (0 picks a free one). Default: off.
    #[arg(long, env = "MANAGEMENT_PORT")]
    pub management_port: Option<u16>,
    /// Address of the management API (default 127.0.0.1: this machine only).
    #[arg(long, env = "MANAGEMENT_HOST")]
    pub management_host: Option<String>,
    /// Serve `/metrics` (TorchServe's and this server's series) on a listener of its own, at
    /// `[http://]HOST:PORT` (a bare PORT listens on 127.0.0.1). Default: off.
    #[arg(long, env = "METRICS_ADDRESS", value_name = "ADDRESS")]
    pub metrics_address: Option<String>,
    /// TorchServe's config.properties: its addresses, model store, models, workers, limits and
    /// tokens, under the flags and environment variables above and over config.toml.
    #[arg(long, env = "TS_CONFIG_FILE", value_name = "FILE")]
    pub ts_config: Option<PathBuf>,
    #[command(flatten)]
    pub tokens: TokenArgs,
    #[command(flatten)]
    pub weights: WeightsArg,
}

/// `torchserve`'s flags (its `ts/arg_parser.py`), with the same names and meanings.
#[derive(Debug, Args, Default)]
pub struct TorchServeArgs {
    /// Start the server; without --foreground it runs in the background and this command returns
    /// once it answers (its pid file lets --stop find it).
    #[arg(long)]
    pub start: bool,
    /// Stop the server that `--start` left running.
    #[arg(long, conflicts_with = "start")]
    pub stop: bool,
    /// Stay in the foreground (what a container's command wants).
    #[arg(long)]
    pub foreground: bool,
    /// TorchServe's "no config snapshots": this server never writes snapshots, so it is the
    /// only behaviour there is.
    #[arg(long = "ncs", visible_alias = "no-config-snapshots")]
    pub no_config_snapshots: bool,
    /// TorchServe's config.properties.
    #[arg(long, env = "TS_CONFIG_FILE", value_name = "FILE")]
    pub ts_config: Option<PathBuf>,
    /// Where archives are looked up, for --models and for registration.
    #[arg(long, value_name = "DIR")]
    pub model_store: Option<PathBuf>,
    /// Models to load at start: NAME=FILE or FILE (space- or comma-separated), or `all` for every
    /// archive in the model store. Given with no value: none.
    #[arg(long, num_args = 0.., value_name = "MODEL")]
    pub models: Option<Vec<String>>,
    /// TorchServe's log4j2 configuration: not read (this server logs through RUST_LOG).
    #[arg(long, value_name = "FILE")]
    pub log_config: Option<PathBuf>,
    /// Accepted and ignored: there are no C++ backends, workflows or Java plugins here.
    #[arg(long, value_name = "FILE")]
    pub cpp_log_config: Option<PathBuf>,
    #[arg(long, value_name = "DIR", hide = true)]
    pub workflow_store: Option<PathBuf>,
    #[arg(long, visible_alias = "ppath", value_name = "DIR", hide = true)]
    pub plugins_path: Option<PathBuf>,
    /// Turn token authorisation off, whatever config.properties says.
    #[arg(long, visible_alias = "dt")]
    pub disable_token_auth: bool,
    /// Allow registering and unregistering models through the management API (on unless
    /// config.properties sets enable_model_api=false).
    #[arg(long)]
    pub enable_model_api: bool,
}

/// Bearer tokens (each off unless set). Prefer the environment or a file to a flag, which other
/// users of the machine can read in the process list.
#[derive(Debug, Clone, Args, Default)]
pub struct TokenArgs {
    /// Token every inference route asks for (health routes, /metrics and the docs stay open).
    #[arg(
        long,
        env = "INFERENCE_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub inference_token: Option<String>,
    /// Token every management route asks for.
    #[arg(
        long,
        env = "MANAGEMENT_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub management_token: Option<String>,
    /// TorchServe's key file (`{"inference": {"key": …}, "management": {"key": …}}`); the flags
    /// above take precedence over its keys.
    #[arg(long, env = "TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Args, Default)]
pub struct WeightsArg {
    /// The MAX model's weights: PyTorch checkpoint (legacy or zip) or safetensors (or a .mar).
    #[arg(long, env = "MAX_MNIST_WEIGHTS", value_name = "FILE")]
    pub weights: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Where the archive lives: an http(s) URL or a local directory.
    #[arg(long)]
    pub bucket: Option<String>,
    /// The archive's file name in the bucket.
    #[arg(long)]
    pub file: Option<String>,
    /// A directory to take the archive from instead of downloading it, when it holds it (its
    /// checksums are still verified); `--bucket`, when given, comes first.
    #[arg(long, env = "MNIST_ASSET_CACHE", value_name = "DIR")]
    pub asset_cache: Option<PathBuf>,
    /// Directory to unpack into.
    #[arg(long)]
    pub dest: Option<PathBuf>,
    #[command(flatten)]
    pub checksums: ChecksumsArg,
}

#[derive(Debug, Args)]
pub struct ChecksumsArg {
    /// Checksum file in `sha512sum -c` format, paths relative to the working directory.
    #[arg(long, value_name = "FILE")]
    pub checksums: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub checksums: ChecksumsArg,
    /// Skip the listed files that are absent (for custom assets that replace only some files).
    #[arg(long)]
    pub skip_missing: bool,
}

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// Host the server answers on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port the server answers on.
    #[arg(long, env = "PORT")]
    pub port: Option<u16>,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Image files to classify.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub weights: WeightsArg,
}
