//! TorchServe's inference and management routes for the one model, as the TorchServe MNIST example
//! answers them: `/predictions/{model}[/{version}]`, `/explanations/{model}`, `/models[/{model}]`.

use actix_multipart::Multipart;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use max_mnist_core::NUM_CLASSES;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::errors::{ApiError, TorchServeError, TorchServeErrorBody};
use crate::inference::{classify, explain, rows, Instance};
use crate::upload::{
    decode_base64, first_part, parse_bounded, parse_json, read_body, read_multipart, text_part,
};
use crate::AppState;

/// The steps TorchServe's MNIST handler gives Captum.
const TORCHSERVE_STEPS: usize = 15;
const BODY_HINT: &str = "send the image as the raw body (`curl -T digit.png`), as multipart field `data` or `file`, or as JSON `{\"data\": \"<base64>\"}`";

/// `{"data": "<base64 image>"}`; TorchServe handlers also read `body`. `target` is for explanations.
#[derive(Deserialize, ToSchema)]
pub struct Base64Image {
    #[serde(alias = "body")]
    data: String,
    target: Option<usize>,
}

/// What a TorchServe request carries: the image, and the class to explain when it names one.
struct TorchServeBody {
    image: Bytes,
    target: Option<usize>,
}

/// The image in any of the bodies TorchServe's MNIST handler accepts.
async fn read_request(
    request: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<TorchServeBody, ApiError> {
    let limits = &state.settings.limits;
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let parts = read_multipart(Multipart::new(request.headers(), payload), limits).await?;
        let image = first_part(&parts, &["data", "file"])
            .map(|part| part.data.clone())
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "no `data` or `file` field in the form: {BODY_HINT}"
                ))
            })?;
        let target = text_part(&parts, "target")?
            .map(|value| parse_bounded(Some(&value), "target", 0..=NUM_CLASSES - 1, 0))
            .transpose()?;
        return Ok(TorchServeBody { image, target });
    }
    let body = read_body(payload, limits).await?;
    if content_type.starts_with("application/json") {
        let json: Base64Image = parse_json(&body, limits)?;
        return Ok(TorchServeBody {
            image: decode_base64(&json.data)?,
            target: json.target,
        });
    }
    Ok(TorchServeBody {
        image: body,
        target: None,
    })
}

/// Classifies one image; answers the digit, as TorchServe's MNIST example does.
#[utoipa::path(
    post,
    path = "/predictions/{model}",
    tag = "TorchServe",
    params(("model" = String, Path, description = "The model's name, `mnist` by default")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "The image file as the raw body (`curl -T 7.png`); multipart `data`/`file` and JSON `{\"data\": \"<base64>\"}` work too"),
    responses(
        (status = 200, description = "The digit", body = u8, example = json!(7)),
        (status = 400, description = "No image, or an undecodable one", body = TorchServeErrorBody),
        (status = 404, description = "Another model or version", body = TorchServeErrorBody),
        (status = 413, description = "The upload or the image is too large", body = TorchServeErrorBody),
    )
)]
pub async fn predictions(
    request: HttpRequest,
    path: web::Path<(String,)>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, TorchServeError> {
    state.settings.check_model(&path.0, None)?;
    predict_one(&request, payload, &state).await
}

/// The same, for a named version of the model.
#[utoipa::path(
    post,
    path = "/predictions/{model}/{version}",
    tag = "TorchServe",
    params(
        ("model" = String, Path, description = "The model's name, `mnist` by default"),
        ("version" = String, Path, description = "The model's version, `1` by default"),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "The digit", body = u8, example = json!(7)),
        (status = 404, description = "Another model or version", body = TorchServeErrorBody),
    )
)]
pub async fn versioned_predictions(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, TorchServeError> {
    state.settings.check_model(&path.0, Some(&path.1))?;
    predict_one(&request, payload, &state).await
}

async fn predict_one(
    request: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<HttpResponse, TorchServeError> {
    let body = read_request(request, payload, state).await?;
    let logits = classify(state, vec![Instance::Image(body.image)]).await?;
    let digit = logits
        .first()
        .and_then(|logits| state.model.post_process(logits, 1).first().copied())
        .map(|top| top.prediction)
        .ok_or_else(|| ApiError::Internal("the model returned no prediction".into()))?;
    Ok(HttpResponse::Ok().json(digit))
}

/// Integrated Gradients of the image, as TorchServe's MNIST example answers them: `[[[…28]…28]]`,
/// 15 steps. The target is `target` from a JSON or multipart body, else the predicted digit
/// (TorchServe's handler uses class 0 when none is given).
#[utoipa::path(
    post,
    path = "/explanations/{model}",
    tag = "TorchServe",
    params(("model" = String, Path, description = "The model's name")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "The image, in any body `/predictions/{model}` takes; JSON and multipart bodies may carry `target`"),
    responses(
        (status = 200, description = "The attributions, [1][28][28]", body = Vec<Vec<Vec<f32>>>),
        (status = 400, description = "No image, an undecodable one, or a bad target", body = TorchServeErrorBody),
        (status = 404, description = "Another model", body = TorchServeErrorBody),
    )
)]
pub async fn explanations(
    request: HttpRequest,
    path: web::Path<(String,)>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, TorchServeError> {
    state.settings.check_model(&path.0, None)?;
    let body = read_request(&request, payload, &state).await?;
    let explained = explain(
        &state,
        Instance::Image(body.image),
        body.target,
        TORCHSERVE_STEPS,
    )
    .await?;
    Ok(HttpResponse::Ok().json([rows(&explained.explanation.attributions)]))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelEntry {
    #[schema(example = "mnist")]
    model_name: String,
    #[schema(example = "mnist.mar")]
    model_url: String,
}

#[derive(Serialize, ToSchema)]
pub struct ModelList {
    models: Vec<ModelEntry>,
}

/// TorchServe's management API: the models served (one).
#[utoipa::path(get, path = "/models", tag = "TorchServe", responses((status = 200, body = ModelList)))]
pub async fn models(state: web::Data<AppState>) -> HttpResponse {
    let name = &state.settings.model_name;
    HttpResponse::Ok().json(ModelList {
        models: vec![ModelEntry {
            model_name: name.clone(),
            model_url: format!("{name}.mar"),
        }],
    })
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelDescription {
    #[schema(example = "mnist")]
    model_name: String,
    #[schema(example = "1")]
    model_version: String,
    #[schema(example = "mnist.mar")]
    model_url: String,
    #[schema(example = "rust")]
    runtime: &'static str,
    #[schema(example = 1)]
    batch_size: usize,
    loaded_at_startup: bool,
    #[schema(example = "READY")]
    status: &'static str,
}

/// TorchServe's management API: the one model described, as a one-element list.
#[utoipa::path(
    get,
    path = "/models/{model}",
    tag = "TorchServe",
    params(("model" = String, Path, description = "The model's name")),
    responses(
        (status = 200, body = Vec<ModelDescription>),
        (status = 404, description = "Another model", body = TorchServeErrorBody),
    )
)]
pub async fn describe_model(
    path: web::Path<(String,)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, TorchServeError> {
    state.settings.check_model(&path.0, None)?;
    let settings = &state.settings;
    Ok(HttpResponse::Ok().json([ModelDescription {
        model_name: settings.model_name.clone(),
        model_version: settings.model_version.clone(),
        model_url: format!("{}.mar", settings.model_name),
        runtime: "rust",
        batch_size: 1,
        loaded_at_startup: true,
        status: "READY",
    }]))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/predictions/{model}")
            .route(web::post().to(predictions))
            .route(web::put().to(predictions)),
    )
    .service(
        web::resource("/predictions/{model}/{version}")
            .route(web::post().to(versioned_predictions))
            .route(web::put().to(versioned_predictions)),
    )
    .service(web::resource("/explanations/{model}").route(web::post().to(explanations)))
    .service(web::resource("/models").route(web::get().to(models)))
    .service(web::resource("/models/{model}").route(web::get().to(describe_model)));
}
