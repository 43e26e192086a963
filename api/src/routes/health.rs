//! Liveness for Docker's HEALTHCHECK and TorchServe clients.

use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct PingResponse {
    #[schema(example = "Healthy")]
    status: &'static str,
}

/// TorchServe's health check: the server is up and the model loaded.
#[utoipa::path(get, path = "/ping", tag = "operations", responses((status = 200, body = PingResponse)))]
#[get("/ping")]
pub async fn ping() -> HttpResponse {
    HttpResponse::Ok().json(PingResponse { status: "Healthy" })
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(ping);
}
