//! The HTTP layer of max-mnist: actix-web routes, the OpenAPI document, JSON errors.
//! It knows the model only through [`max_mnist_core::DigitModel`].

pub mod catch_panic;
pub mod errors;
pub mod inference;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod upload;

pub use settings::{ApiInfo, CorsSettings, ModelMetadata, RequestLimits, ServiceSettings};
pub use startup::{AppState, Application};
