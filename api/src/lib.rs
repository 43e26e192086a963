//! The HTTP layer of max-mnist: actix-web routes, the OpenAPI document, JSON errors.
//! It knows models only through [`max_mnist_core::Model`] and their description.

pub mod auth;
pub mod catch_panic;
pub mod confined;
pub mod endpoints;
pub mod errors;
pub mod inference;
pub mod instance;
pub mod metrics;
pub mod model_store;
pub mod openapi;
pub mod options;
pub mod parameters;
pub mod recording;
pub mod registry;
pub mod resolved;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod state;
pub mod tabular;
pub mod upload;
pub mod work_queue;

pub use auth::{AuthSettings, Token};
pub use registry::LoadedModel;
pub use settings::{ApiInfo, CorsSettings, MaxModelMetadata, RequestLimits, ServiceSettings};
pub use startup::{Application, Listeners};
pub use state::AppState;
