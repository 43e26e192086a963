//! One file per area of the API.

pub mod docs;
pub mod explain;
pub mod health;
pub mod kserve_v1;
pub mod kserve_v2;
pub mod management;
pub mod model;
pub mod torchserve;

use actix_web::web;

/// actix tries routes in this order, so the busiest and the cheapest to match come first; the
/// patterns that need a regex (KServe v1's `{model}:predict`, Swagger UI's files) come last.
pub fn configure(cfg: &mut web::ServiceConfig) {
    model::configure(cfg);
    health::configure(cfg);
    torchserve::configure(cfg);
    explain::configure(cfg);
    kserve_v2::configure(cfg);
    kserve_v1::configure(cfg);
    docs::configure(cfg);
}

/// Both APIs on one listener, as TorchServe serves them when `inference_address` and
/// `management_address` are the same: the management routes first, so that `/models` is the
/// management API's (the inference API's is its read-only half).
pub fn configure_both(cfg: &mut web::ServiceConfig) {
    management::configure_shared(cfg);
    configure(cfg);
}
