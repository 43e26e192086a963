//! `POST /model/explain`: Integrated Gradients of a digit, as JSON or as a heatmap picture.

use actix_multipart::Multipart;
use actix_web::http::header::ACCEPT;
use actix_web::web::Bytes;
use actix_web::{post, web, HttpRequest, HttpResponse};
use max_mnist_core::explain::MAX_STEPS;
use max_mnist_core::heatmap::heatmap_png;
use max_mnist_core::NUM_CLASSES;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::errors::{ApiError, ErrorBody, UPLOAD_HINT};
use crate::inference::{explain, rows, Explained, Instance, DEFAULT_STEPS};
use crate::upload::{first_part, parse_bounded, read_multipart, text_part};
use crate::AppState;

/// A digit image upload, and what to explain.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the form; the handler reads the parts
pub struct ExplainForm {
    /// The image: PNG, JPEG, GIF, BMP, WebP or TIFF.
    #[schema(value_type = String, format = Binary)]
    file: Option<Bytes>,
    /// The class to explain, 0 to 9 (default: the predicted digit).
    #[schema(value_type = Option<u8>, minimum = 0, maximum = 9)]
    target: Option<String>,
    /// Quadrature points, 1 to 512 (default 50).
    #[schema(value_type = Option<u16>, minimum = 1, maximum = 512, example = 50)]
    steps: Option<String>,
}

#[derive(Deserialize, IntoParams)]
pub struct ExplainQuery {
    /// `png` for the heatmap picture (as `Accept: image/png`).
    format: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ExplainResponse<'a> {
    #[schema(example = "ok")]
    status: &'static str,
    #[schema(example = 7)]
    prediction: u8,
    #[schema(example = 7)]
    target: usize,
    /// 28 rows of 28 attributions, in logit units; they add up to about logit(image) − logit(black).
    #[schema(value_type = Vec<Vec<f32>>)]
    attributions: Vec<&'a [f32]>,
    /// Σ attributions − (logit(image) − logit(baseline)): the quadrature's error.
    convergence_delta: f32,
}

/// Explains a prediction with Integrated Gradients (as Captum's, baseline black, Gauss–Legendre).
/// `Accept: image/png` or `?format=png` answers a 280×280 heatmap instead: red pushed towards the
/// target, blue against it.
#[utoipa::path(
    post,
    path = "/model/explain",
    tag = "MAX",
    params(ExplainQuery),
    request_body(content = ExplainForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "The attributions, or their heatmap",
            content((ExplainResponse = "application/json"), (Vec<u8> = "image/png"))),
        (status = 400, description = "No image, an undecodable one, or a bad `target` or `steps`", body = ErrorBody),
        (status = 413, description = "The upload or the image is too large", body = ErrorBody),
        (status = 415, description = "The body is not multipart/form-data", body = ErrorBody),
    )
)]
#[post("/model/explain")]
pub async fn explain_route(
    request: HttpRequest,
    query: web::Query<ExplainQuery>,
    state: web::Data<AppState>,
    multipart: Multipart,
) -> Result<HttpResponse, ApiError> {
    let parts = read_multipart(multipart, &state.settings.limits).await?;
    let target = text_part(&parts, "target")?
        .map(|value| parse_bounded(Some(&value), "target", 0..=NUM_CLASSES - 1, 0))
        .transpose()?;
    let steps = parse_bounded(
        text_part(&parts, "steps")?.as_deref(),
        "steps",
        1..=MAX_STEPS,
        DEFAULT_STEPS,
    )?;
    let image = first_part(&parts, &["file", "image"])
        .map(|part| part.data.clone())
        .ok_or_else(|| ApiError::BadRequest(format!("no image in the request: {UPLOAD_HINT}")))?;
    let explained = explain(&state, Instance::Image(image), target, steps).await?;
    if wants_png(&request, &query) {
        return png_response(&explained);
    }
    Ok(HttpResponse::Ok().json(ExplainResponse {
        status: "ok",
        prediction: explained.prediction,
        target: explained.explanation.target,
        attributions: rows(&explained.explanation.attributions),
        convergence_delta: explained.explanation.convergence_delta,
    }))
}

/// `?format=png`, or an `Accept` header that names `image/png` (a browser's `*/*` does not count).
pub fn wants_png(request: &HttpRequest, query: &ExplainQuery) -> bool {
    if let Some(format) = &query.format {
        return format.eq_ignore_ascii_case("png");
    }
    request
        .headers()
        .get(ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.to_ascii_lowercase().contains("image/png"))
}

pub fn png_response(explained: &Explained) -> Result<HttpResponse, ApiError> {
    let png = heatmap_png(&explained.input, &explained.explanation.attributions)?;
    Ok(HttpResponse::Ok().content_type("image/png").body(png))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(explain_route);
}
