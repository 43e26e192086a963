//! The `max-mnist` command's building blocks, shared with the integration tests.

pub mod assets;
pub mod checksums;
pub mod cli;
pub mod configuration;
pub mod daemon;
pub mod launch;
pub mod models;
pub mod predict;
pub mod properties;
pub mod tokens;
pub mod ts_config;
