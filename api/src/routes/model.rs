//! The MAX routes: `/model/metadata`, `/model/labels`, `/model/predict`.

use actix_multipart::Multipart;
use actix_web::web::Bytes;
use actix_web::{get, post, web, HttpResponse};
use max_mnist_core::NUM_CLASSES;
use serde::Serialize;
use utoipa::ToSchema;

use crate::errors::{ApiError, ErrorBody, UPLOAD_HINT};
use crate::inference::{classify, Instance};
use crate::upload::{first_part, parse_bounded, read_multipart, text_part, Part};
use crate::{AppState, ModelMetadata};

/// The model's description, from `config.toml`'s `[metadata]`.
#[utoipa::path(get, path = "/model/metadata", tag = "MAX", responses((status = 200, body = ModelMetadata)))]
#[get("/model/metadata")]
pub async fn metadata(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(&state.settings.metadata)
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

/// The ten classes the model tells apart.
#[utoipa::path(get, path = "/model/labels", tag = "MAX", responses((status = 200, body = LabelsResponse)))]
#[get("/model/labels")]
pub async fn labels() -> HttpResponse {
    let labels: Vec<Label> = (0..NUM_CLASSES)
        .map(|digit| Label {
            id: digit.to_string(),
            name: digit.to_string(),
        })
        .collect();
    HttpResponse::Ok().json(LabelsResponse {
        count: labels.len(),
        labels,
    })
}

/// A digit image upload.
#[derive(ToSchema)]
pub struct PredictForm {
    /// The image: PNG, JPEG, GIF, BMP, WebP or TIFF. A 28×28 grayscale image is used as it is.
    #[schema(value_type = String, format = Binary)]
    file: Option<Bytes>,
    /// Another name for `file`.
    #[schema(value_type = Option<String>, format = Binary)]
    image: Option<Bytes>,
    /// How many of the most probable digits to return, 1 to 10 (default 1).
    #[schema(value_type = Option<u8>, minimum = 1, maximum = 10, example = 1)]
    top_k: Option<String>,
}

impl PredictForm {
    /// Unknown fields are ignored, as MAX's Flask parser does; the first of duplicates wins.
    fn from_parts(parts: &[Part]) -> Result<Self, ApiError> {
        let top_k = text_part(parts, "top_k")?;
        Ok(Self {
            file: first_part(parts, &["file"]).map(|part| part.data.clone()),
            image: first_part(parts, &["image"]).map(|part| part.data.clone()),
            top_k,
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct PredictionBody {
    #[schema(example = 7)]
    prediction: u8,
    /// Softmax probability, 0 to 1.
    #[schema(example = 0.9987)]
    probability: f32,
}

#[derive(Serialize, ToSchema)]
pub struct PredictResponse {
    #[schema(example = "ok")]
    status: &'static str,
    /// Most probable first.
    predictions: Vec<PredictionBody>,
}

/// Classifies the digit in an uploaded image.
#[utoipa::path(
    post,
    path = "/model/predict",
    tag = "MAX",
    request_body(content = PredictForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "The most probable digits", body = PredictResponse),
        (status = 400, description = "No image, an undecodable image, or a bad `top_k`", body = ErrorBody),
        (status = 408, description = "The request took longer than `limits.request_timeout_secs` to arrive", body = ErrorBody),
        (status = 413, description = "The upload or the image is too large", body = ErrorBody),
        (status = 415, description = "The body is not multipart/form-data, or the upload is an SVG or a PDF", body = ErrorBody),
        (status = 500, description = "A bug; the server keeps serving", body = ErrorBody),
    )
)]
#[post("/model/predict")]
pub async fn predict(
    state: web::Data<AppState>,
    multipart: Multipart,
) -> Result<HttpResponse, ApiError> {
    let parts = read_multipart(multipart, &state.settings.limits).await?;
    let form = PredictForm::from_parts(&parts)?;
    let top_k = parse_top_k(form.top_k.as_deref())?;
    let upload = form
        .file
        .or(form.image)
        .ok_or_else(|| ApiError::BadRequest(format!("no image in the request: {UPLOAD_HINT}")))?;
    let logits = classify(&state, vec![Instance::Image(upload)]).await?;
    let predictions = logits
        .first()
        .map(|logits| state.model.post_process(logits, top_k))
        .unwrap_or_default();
    Ok(HttpResponse::Ok().json(PredictResponse {
        status: "ok",
        predictions: predictions
            .into_iter()
            .map(|p| PredictionBody {
                prediction: p.prediction,
                probability: p.probability,
            })
            .collect(),
    }))
}

fn parse_top_k(value: Option<&str>) -> Result<usize, ApiError> {
    parse_bounded(value, "top_k", 1..=NUM_CLASSES, 1)
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(metadata).service(labels).service(predict);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_defaults_to_one_and_refuses_out_of_range() {
        assert_eq!(parse_top_k(None).ok(), Some(1));
        assert_eq!(parse_top_k(Some(" 10 ")).ok(), Some(10));
        for bad in ["0", "11", "-1", "three", ""] {
            assert!(parse_top_k(Some(bad)).is_err(), "{bad}");
        }
    }
}
