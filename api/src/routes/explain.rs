//! `POST /model/explain`: Integrated Gradients of the first model's prediction, as JSON or as a
//! picture.

use actix_multipart::Multipart;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use max_mnist_core::{DefaultTarget, ExplanationInfo, InputKind};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::model::MaxModel;
use crate::endpoints;
use crate::errors::{ApiError, ErrorBody, UPLOAD_HINT};
use crate::inference::{
    explain, explain_one, explanation_settings, first_and_mean, trimmed, FeatureMap, Nested,
};
use crate::instance::Instance;
use crate::options::{Options, EXPLAIN_OPTIONS};
use crate::registry::ServedModel;
use crate::state::AppState;
use crate::tabular;
use crate::upload::{first_part, read_multipart};

/// Quadrature points when the request names none.
pub const DEFAULT_STEPS: usize = 50;

/// An image upload, and what to explain.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the form; the handler reads the parts
pub struct ExplainForm {
    /// The image: PNG, JPEG, GIF, BMP, WebP or TIFF.
    #[schema(value_type = String, format = Binary)]
    file: Option<Bytes>,
    /// The class to explain (default: the predicted one). Also read from the query string.
    #[schema(value_type = Option<u8>, minimum = 0)]
    target: Option<String>,
    /// Quadrature points, 1 to 512 (default 50). Also read from the query string.
    #[schema(value_type = Option<u16>, minimum = 1, maximum = 512, example = 50)]
    steps: Option<String>,
    /// `png` for the picture (as `Accept: image/png`), `json` for the numbers. Also read from the
    /// query string.
    #[schema(value_type = Option<String>, example = "png")]
    format: Option<String>,
}

/// The options, as the query string carries them.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query; `Options` reads it
pub struct ExplainQuery {
    /// `png` for the picture (as `Accept: image/png`), `json` for the numbers.
    format: Option<String>,
    /// The class to explain (default: the predicted one).
    target: Option<u8>,
    /// Quadrature points, 1 to 512 (default 50).
    #[param(minimum = 1, maximum = 512)]
    steps: Option<u16>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = MaxExplainResponse)]
pub struct ExplainResponse<'a> {
    #[schema(example = "ok")]
    status: &'static str,
    #[schema(example = 7)]
    prediction: usize,
    #[schema(example = 7)]
    target: usize,
    /// The attributions in the input's shape (`[H][W]` for a grayscale image model), in the units of
    /// the model's output; they add up to about output(image) − output(baseline).
    #[schema(value_type = Vec<Vec<f32>>)]
    attributions: Nested<'a>,
    /// Σ attributions − (output(image) − output(baseline)): the quadrature's error.
    convergence_delta: f32,
}

/// What `/model/explain` answers in JSON: an image's explanation, or rows'.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = MaxExplanation)]
#[allow(dead_code)] // documents the answer; the handler writes either
pub enum Explanation<'a> {
    Image(ExplainResponse<'a>),
    Rows(TabularExplainResponse<'a>),
}

/// The explanation of rows: the mean attribution per feature, and each row's.
#[derive(Serialize, ToSchema)]
pub struct TabularExplainResponse<'a> {
    #[schema(example = "ok")]
    status: &'static str,
    #[schema(example = 1)]
    target: usize,
    #[schema(example = "positive")]
    label: &'a str,
    /// The mean attribution per feature over the rows, `{"feature_0": -0.73, …}`.
    #[schema(value_type = Object)]
    attributions: FeatureMap<'a>,
    /// The mean convergence delta.
    convergence_delta: f32,
    rows: Vec<RowExplanation<'a>>,
}

#[derive(Serialize, ToSchema)]
pub struct RowExplanation<'a> {
    #[schema(example = 1)]
    prediction: usize,
    /// The probability of `target`.
    probability: f32,
    #[schema(value_type = Object)]
    attributions: FeatureMap<'a>,
    convergence_delta: f32,
}

/// Explains a prediction with Integrated Gradients (as Captum's, baseline zero in normalised
/// space, Gauss–Legendre). `Accept: image/png` or `format=png` answers a picture instead: for an
/// image, a heatmap, red pushed towards the target, blue against it. For a tabular first
/// model, the rows of a CSV upload or JSON body, their mean attribution per feature, and a
/// bar chart of it as the picture.
#[utoipa::path(
    post,
    path = endpoints::MAX_EXPLAIN,
    tag = "MAX",
    params(ExplainQuery),
    request_body(content = ExplainForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "The attributions, or their picture",
            content((Explanation = "application/json"), (inline(super::torchserve::ImageFile) = "image/png"))),
        (status = 400, description = "No image, an undecodable one, or a bad `target`, `steps` or `format`", body = ErrorBody),
        (status = 413, description = "The upload or the image is too large", body = ErrorBody),
        (status = 415, description = "The body is not multipart/form-data", body = ErrorBody),
    )
)]
pub async fn explain_route(
    request: HttpRequest,
    model: MaxModel,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    if model.info().input.kind == InputKind::Features {
        return explain_rows(&request, &model, &state, payload).await;
    }
    let multipart = Multipart::new(request.headers(), payload);
    let parts = read_multipart(multipart, &state.settings.limits).await?;
    let options = Options::new(&request, &parts, EXPLAIN_OPTIONS)?;
    let target = options.number("target")?;
    let steps = options.number("steps")?.unwrap_or(DEFAULT_STEPS);
    let png = options.wants_png(&request)?;
    let file = first_part(&parts, &["file", "image"])
        .map(|part| part.data.clone())
        .ok_or_else(|| ApiError::BadRequest(format!("no image in the request: {UPLOAD_HINT}")))?;
    let settings = ExplanationInfo {
        steps,
        target: DefaultTarget::Predicted,
    };
    let explained = explain_one(&model, Instance::File(file), target, settings).await?;
    if png {
        let png = model
            .model
            .explanation_png(&explained.input, &explained.explanation)?;
        return Ok(HttpResponse::Ok().content_type("image/png").body(png));
    }
    Ok(HttpResponse::Ok().json(ExplainResponse {
        status: "ok",
        prediction: explained.classification.class,
        target: explained.explanation.target,
        attributions: Nested {
            values: &explained.explanation.attributions,
            shape: trimmed(&model.info().input.shape),
        },
        convergence_delta: explained.explanation.convergence_delta,
    }))
}

/// The rows of a CSV upload or JSON body, explained; options from the query string, `target`
/// also from the body.
async fn explain_rows(
    request: &HttpRequest,
    model: &ServedModel,
    state: &AppState,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let options = Options::new(request, &[], EXPLAIN_OPTIONS)?;
    let steps = options.number("steps")?.unwrap_or(DEFAULT_STEPS);
    let png = options.wants_png(request)?;
    let body = tabular::read(request, payload, &state.settings).await?;
    let target = match (options.number("target")?, body.target) {
        (Some(query), Some(inside)) if query != inside => {
            return Err(ApiError::BadRequest(format!(
                "target is {query} in the query string and {inside} in the body: give it once"
            )))
        }
        (query, inside) => query.or(inside),
    };
    let requests = body.instances.into_iter().map(|i| (i, target)).collect();
    let settings = explanation_settings(model.info(), Some(steps));
    let explained = explain(model, requests, settings).await?;
    let (first, mean) = first_and_mean(&explained)?;
    if png {
        let picture = model.model.explanation_png(&first.input, &mean)?;
        return Ok(HttpResponse::Ok().content_type("image/png").body(picture));
    }
    let info = model.info();
    let names = &info.input.feature_names;
    Ok(HttpResponse::Ok().json(TabularExplainResponse {
        status: "ok",
        target: mean.target,
        label: info.output.label(mean.target),
        attributions: FeatureMap {
            names,
            values: &mean.attributions,
        },
        convergence_delta: mean.convergence_delta,
        rows: explained
            .iter()
            .map(|e| RowExplanation {
                prediction: e.classification.class,
                probability: e
                    .classification
                    .probabilities
                    .get(e.explanation.target)
                    .copied()
                    .unwrap_or(0.0),
                attributions: FeatureMap {
                    names,
                    values: &e.explanation.attributions,
                },
                convergence_delta: e.explanation.convergence_delta,
            })
            .collect(),
    }))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource(endpoints::MAX_EXPLAIN).route(web::post().to(explain_route)));
}
