//! One file per area of the API.

pub mod docs;
pub mod explain;
pub mod health;
pub mod kserve_v1;
pub mod kserve_v2;
pub mod model;
pub mod torchserve;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    docs::configure(cfg);
    health::configure(cfg);
    kserve_v1::configure(cfg);
    kserve_v2::configure(cfg);
    model::configure(cfg);
    explain::configure(cfg);
    torchserve::configure(cfg);
}
