//! One file per area of the API.

pub mod docs;
pub mod health;
pub mod model;
pub mod torchserve;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    docs::configure(cfg);
    health::configure(cfg);
    model::configure(cfg);
    torchserve::configure(cfg);
}
