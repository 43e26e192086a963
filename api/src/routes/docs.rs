//! `GET /`: Swagger UI for browsers, `{"status":"alive"}` for API clients; the OpenAPI document.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::endpoints;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct AliveResponse {
    #[schema(example = "alive")]
    status: &'static str,
}

/// Browsers (whose `Accept` includes `text/html`) are sent to Swagger UI; other clients get
/// KServe v1's liveness answer.
#[utoipa::path(get, path = endpoints::INDEX, tag = "operations", responses(
    (status = 200, description = "Liveness, for clients that do not accept HTML", body = AliveResponse),
    (status = 302, description = "Browsers are redirected to Swagger UI at `swagger-ui/`"),
))]
pub async fn index(request: HttpRequest) -> HttpResponse {
    let wants_html = request
        .headers()
        .get_all(header::ACCEPT)
        .filter_map(|value| value.to_str().ok())
        .any(|accept| accept.contains("text/html"));
    if wants_html {
        redirect_to_swagger_ui("swagger-ui/")
    } else {
        HttpResponse::Ok().json(AliveResponse { status: "alive" })
    }
}

/// The OpenAPI document (also at `/openapi.json`).
#[utoipa::path(get, path = endpoints::SWAGGER_JSON, tag = "operations", responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
pub async fn swagger_json(state: web::Data<AppState>) -> HttpResponse {
    openapi_response(&state)
}

/// The OpenAPI document (also at `/swagger.json`).
#[utoipa::path(get, path = endpoints::OPENAPI_JSON, tag = "operations", responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
pub async fn openapi_json(state: web::Data<AppState>) -> HttpResponse {
    openapi_response(&state)
}

fn openapi_response(state: &AppState) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.openapi_json())
}

async fn swagger_ui_without_slash() -> HttpResponse {
    redirect_to_swagger_ui("swagger-ui/")
}

/// Relative locations, so the pages work behind a proxy that adds HTTPS or a path prefix.
fn redirect_to_swagger_ui(location: &str) -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, location))
        .finish()
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource(endpoints::INDEX).route(web::get().to(index)))
        .service(web::resource(endpoints::SWAGGER_JSON).route(web::get().to(swagger_json)))
        .service(web::resource(endpoints::OPENAPI_JSON).route(web::get().to(openapi_json)))
        .service(
            web::resource(endpoints::SWAGGER_UI).route(web::get().to(swagger_ui_without_slash)),
        )
        // The page at /swagger-ui/ loads the document relative to itself, never by an absolute URL.
        .service(
            SwaggerUi::new(endpoints::SWAGGER_UI_FILES).config(Config::from("../swagger.json")),
        );
}
