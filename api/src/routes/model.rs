//! The MAX routes of the first model: `/model/metadata`, `/model/labels`, `/model/predict`.

use actix_multipart::Multipart;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use max_mnist_core::InputKind;
use serde::Serialize;
use utoipa::ToSchema;

use crate::endpoints;
use crate::errors::{ApiError, ErrorBody, UPLOAD_HINT};
use crate::inference::classify;
use crate::instance::Instance;
use crate::options::{Options, PREDICT_OPTIONS};
use crate::resolved::Resolved;
use crate::state::AppState;
use crate::upload::{first_part, read_multipart};
use crate::{tabular, MaxModelMetadata};

/// The first model, which the MAX routes answer with.
pub type MaxModel = Resolved<ApiError>;

/// The model's description, as MAX gives it.
#[utoipa::path(get, path = endpoints::MAX_METADATA, tag = "MAX", responses((status = 200, body = MaxModelMetadata)))]
pub async fn metadata(state: web::Data<AppState>) -> HttpResponse {
    match state.registry.first() {
        Some(first) => HttpResponse::Ok().json(state.settings.metadata_of(first.info())),
        None => HttpResponse::Ok().json(&state.settings.metadata),
    }
}

#[derive(Serialize, ToSchema)]
pub struct Label {
    #[schema(example = "7")]
    id: String,
    #[schema(example = "7")]
    name: String,
}

#[derive(Serialize, ToSchema)]
pub struct LabelsResponse {
    #[schema(example = 10)]
    count: usize,
    labels: Vec<Label>,
}

/// The classes the model tells apart.
#[utoipa::path(get, path = endpoints::MAX_LABELS, tag = "MAX", responses((status = 200, body = LabelsResponse)))]
pub async fn labels(model: MaxModel) -> HttpResponse {
    let labels: Vec<Label> = model
        .info()
        .output
        .labels
        .iter()
        .enumerate()
        .map(|(class, name)| Label {
            id: class.to_string(),
            name: name.clone(),
        })
        .collect();
    HttpResponse::Ok().json(LabelsResponse {
        count: labels.len(),
        labels,
    })
}

/// An image upload.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the form; the handler reads the parts
pub struct PredictForm {
    /// The image: PNG, JPEG, GIF, BMP, WebP or TIFF. An image already of the model's input size is used as it is.
    #[schema(value_type = String, format = Binary)]
    file: Option<Bytes>,
    /// Another name for `file`.
    #[schema(value_type = Option<String>, format = Binary)]
    image: Option<Bytes>,
    /// How many of the most probable classes to return, from 1 to the number of classes (default
    /// 1). Also read from the query string.
    #[schema(value_type = Option<u8>, minimum = 1, example = 1)]
    top_k: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PredictionBody {
    /// The class.
    #[schema(example = 7)]
    prediction: usize,
    /// The class's label, for tabular models (`positive`).
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<String>,
    /// Softmax probability, 0 to 1.
    #[schema(example = 0.9987)]
    probability: f32,
}

#[derive(Serialize, ToSchema)]
#[schema(as = MaxPredictResponse)]
pub struct PredictResponse {
    #[schema(example = "ok")]
    status: &'static str,
    /// An image: its most probable classes, most probable first. Rows: each one's most
    /// probable class, in order.
    predictions: Vec<PredictionBody>,
}

/// Classifies the image in an upload; for a tabular first model, each row of a CSV upload or
/// JSON body.
#[utoipa::path(
    post,
    path = endpoints::MAX_PREDICT,
    tag = "MAX",
    params(("top_k" = Option<u8>, Query, description = "As the form field `top_k`")),
    request_body(content = PredictForm, content_type = "multipart/form-data",
        description = "An image in `file`; for a tabular model, a CSV in `file`, or a `text/csv` or JSON body"),
    responses(
        (status = 200, description = "The most probable classes", body = PredictResponse),
        (status = 400, description = "No image, an undecodable image, or a bad `top_k`", body = ErrorBody),
        (status = 408, description = "The request took longer than `limits.request_timeout_secs` to arrive", body = ErrorBody),
        (status = 413, description = "The upload or the image is too large", body = ErrorBody),
        (status = 415, description = "The body is not multipart/form-data, or the upload is an SVG or a PDF", body = ErrorBody),
        (status = 500, description = "A bug; the server keeps serving", body = ErrorBody),
    )
)]
pub async fn predict(
    request: HttpRequest,
    model: MaxModel,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let info = model.info();
    if info.input.kind == InputKind::Features {
        if Options::new(&request, &[], PREDICT_OPTIONS)?
            .number("top_k")?
            .is_some_and(|k| k != 1)
        {
            return Err(ApiError::BadRequest(
                "top_k is for images: each row's answer is its most probable class".into(),
            ));
        }
        let body = tabular::read(&request, payload, &state.settings).await?;
        let predictions = classify(&model, body.instances)
            .await?
            .iter()
            .map(|c| PredictionBody {
                prediction: c.class,
                label: Some(info.output.label(c.class).to_owned()),
                probability: c.probabilities.get(c.class).copied().unwrap_or(0.0),
            })
            .collect();
        return Ok(HttpResponse::Ok().json(PredictResponse {
            status: "ok",
            predictions,
        }));
    }
    let multipart = Multipart::new(request.headers(), payload);
    let parts = read_multipart(multipart, &state.settings.limits).await?;
    let options = Options::new(&request, &parts, PREDICT_OPTIONS)?;
    let classes = model.info().output.labels.len();
    let top_k = match options.number("top_k")? {
        None => 1,
        Some(k) if (1..=classes).contains(&k) => k,
        Some(k) => {
            return Err(ApiError::BadRequest(format!(
                "top_k must be from 1 to {classes}, got {k}"
            )))
        }
    };
    // Unknown fields are ignored, as MAX's Flask parser does; the first of duplicates wins.
    let upload = first_part(&parts, &["file", "image"])
        .map(|part| part.data.clone())
        .ok_or_else(|| ApiError::BadRequest(format!("no image in the request: {UPLOAD_HINT}")))?;
    let classifications = classify(&model, vec![Instance::File(upload)]).await?;
    let predictions = classifications
        .first()
        .map(|classification| classification.top_k(top_k))
        .unwrap_or_default();
    Ok(HttpResponse::Ok().json(PredictResponse {
        status: "ok",
        predictions: predictions
            .into_iter()
            .map(|p| PredictionBody {
                prediction: p.class,
                label: None,
                probability: p.probability,
            })
            .collect(),
    }))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Resources with method routes, not guarded services, so that another method is a 405.
    cfg.service(web::resource(endpoints::MAX_METADATA).route(web::get().to(metadata)))
        .service(web::resource(endpoints::MAX_LABELS).route(web::get().to(labels)))
        .service(web::resource(endpoints::MAX_PREDICT).route(web::post().to(predict)));
}
