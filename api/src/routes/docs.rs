//! `GET /`: Swagger UI for browsers, `{"status":"alive"}` for API clients; the OpenAPI document;
//! `GET /demo`, a page to draw a digit on.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use max_mnist_core::InputKind;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::endpoints;
use crate::errors::ApiError;
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

#[derive(Deserialize, IntoParams)]
pub struct DemoQuery {
    /// The model to try (default: the first).
    model: Option<String>,
}

/// A self-contained page (no CDN) to try a model through the public API: for an image model, draw
/// or upload a digit and see the prediction, the ten probabilities and the explanation heatmap;
/// for a tabular one, change a passenger's fields and see the survival probability and the
/// attribution chart.
#[utoipa::path(get, path = endpoints::DEMO, tag = "operations", params(DemoQuery), responses(
    (status = 200, description = "The demo page", content_type = "text/html", body = String),
    (status = 400, description = "A query string other than `?model=NAME`", body = crate::errors::ErrorBody),
    (status = 404, description = "A model not served", body = crate::errors::ErrorBody),
))]
pub async fn demo(
    query: web::Query<DemoQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let served = match &query.model {
        Some(name) => state.registry.resolve(name, None)?,
        None => state.registry.first().ok_or_else(|| {
            ApiError::NotFound("this server serves no model at the moment".into())
        })?,
    };
    let page = match served.info().input.kind {
        InputKind::Image => DIGIT_PAGE.to_owned(),
        InputKind::Features => PASSENGER_PAGE.replacen(
            "<html lang=\"en\">",
            &format!(
                "<html lang=\"en\" data-model=\"{}\">",
                html_escaped(&served.info().name)
            ),
            1,
        ),
    };
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(page))
}

const DIGIT_PAGE: &str = include_str!("../../static/demo.html");
const PASSENGER_PAGE: &str = include_str!("../../static/passenger.html");

fn html_escaped(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            other => other.to_string(),
        })
        .collect()
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
        .service(
            web::resource(endpoints::DEMO)
                .app_data(web::QueryConfig::default().error_handler(|err, _| {
                    ApiError::BadRequest(format!(
                        "the query string is not `?model=NAME` ({err}): name one model, or none for the first"
                    ))
                    .into()
                }))
                .route(web::get().to(demo)),
        )
        .service(web::resource(endpoints::SWAGGER_JSON).route(web::get().to(swagger_json)))
        .service(web::resource(endpoints::OPENAPI_JSON).route(web::get().to(openapi_json)))
        .service(web::resource(endpoints::SWAGGER_UI).route(web::get().to(swagger_ui_without_slash)))
        // The page at /swagger-ui/ loads the document relative to itself, never by an absolute URL.
        .service(SwaggerUi::new(endpoints::SWAGGER_UI_FILES).config(Config::from("../swagger.json")));
}
