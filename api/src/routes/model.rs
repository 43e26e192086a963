//! The MAX routes: `/model/metadata`, `/model/labels`, `/model/predict`.

use actix_multipart::form::{bytes::Bytes, text::Text, MultipartForm};
use actix_web::{get, post, web, HttpResponse};
use max_mnist_core::{CoreError, Prediction, NUM_CLASSES};
use serde::Serialize;
use utoipa::ToSchema;

use crate::errors::{multipart_error, ApiError, ErrorBody, UPLOAD_HINT};
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
#[derive(MultipartForm, ToSchema)]
pub struct PredictForm {
    /// The image: PNG, JPEG, GIF, BMP, WebP or TIFF. A 28×28 grayscale image is used as it is.
    #[schema(value_type = String, format = Binary)]
    file: Option<Bytes>,
    /// Another name for `file`.
    #[schema(value_type = Option<String>, format = Binary)]
    image: Option<Bytes>,
    /// How many of the most probable digits to return, 1 to 10 (default 1).
    #[schema(value_type = Option<u8>, minimum = 1, maximum = 10, example = 1)]
    top_k: Option<Text<String>>,
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
        (status = 413, description = "The upload or the image is too large", body = ErrorBody),
        (status = 415, description = "The body is not multipart/form-data", body = ErrorBody),
    )
)]
#[post("/model/predict")]
pub async fn predict(
    state: web::Data<AppState>,
    form: Result<MultipartForm<PredictForm>, actix_web::Error>,
) -> Result<HttpResponse, ApiError> {
    let MultipartForm(form) =
        form.map_err(|err| multipart_error(&err, state.settings.max_body_bytes))?;
    let top_k = parse_top_k(form.top_k.as_ref().map(|t| t.as_str()))?;
    let upload = form
        .file
        .or(form.image)
        .ok_or_else(|| ApiError::BadRequest(format!("no image in the request: {UPLOAD_HINT}")))?;
    let model = state.model.clone();
    let predictions = web::block(move || -> Result<Vec<Prediction>, CoreError> {
        let input = model.pre_process(&upload.data)?;
        let logits = model.predict(std::slice::from_ref(&input))?;
        Ok(logits
            .first()
            .map(|logits| model.post_process(logits, top_k))
            .unwrap_or_default())
    })
    .await
    .map_err(|err| ApiError::Internal(format!("the inference task failed ({err}): try again")))??;
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
    let Some(value) = value else { return Ok(1) };
    match value.trim().parse::<usize>() {
        Ok(k) if (1..=NUM_CLASSES).contains(&k) => Ok(k),
        _ => Err(ApiError::BadRequest(format!(
            "top_k must be a whole number from 1 to {NUM_CLASSES}, got `{value}`"
        ))),
    }
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
