//! TorchServe's inference routes and the read-only part of its management API, as TorchServe's
//! examples answer them: `/predictions/{model}[/{version}]`, `/explanations/{model}`,
//! `/models[/{model}]`.

use actix_multipart::Multipart;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::errors::{ApiError, TorchServeError, TorchServeErrorBody};
use crate::inference::{classify, explain, Instance, Nested};
use crate::registry::{Resolved, ServedModel};
use crate::upload::{
    decode_base64, first_part, parse_json, parse_number, read_body, read_multipart, text_part,
};
use crate::AppState;

type Model = Resolved<TorchServeError>;

const BODY_HINT: &str = "send the image as the raw body (`curl -T digit.png`), as multipart field `data` or `file`, or as JSON `{\"data\": \"<base64>\"}`";

/// `{"data": "<base64 image>"}`; TorchServe handlers also read `body`. `target` is for explanations.
#[derive(Deserialize, ToSchema)]
pub struct Base64Image {
    #[serde(alias = "body")]
    data: String,
    target: Option<usize>,
}

/// What a TorchServe request carries: the file, and the class to explain when it names one.
struct TorchServeBody {
    file: Bytes,
    target: Option<usize>,
}

/// The file in any of the bodies TorchServe's image handlers accept.
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
        let file = first_part(&parts, &["data", "file"])
            .map(|part| part.data.clone())
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "no `data` or `file` field in the form: {BODY_HINT}"
                ))
            })?;
        let target = text_part(&parts, "target")?
            .map(|value| parse_number(&value, "target"))
            .transpose()?;
        return Ok(TorchServeBody { file, target });
    }
    let body = read_body(payload, limits).await?;
    if content_type.starts_with("application/json") {
        let json: Base64Image = parse_json(&body, limits)?;
        return Ok(TorchServeBody {
            file: decode_base64(&json.data)?,
            target: json.target,
        });
    }
    Ok(TorchServeBody {
        file: body,
        target: None,
    })
}

/// Classifies one image; answers the class, as TorchServe's MNIST example does.
#[utoipa::path(
    post,
    path = "/predictions/{model}",
    tag = "TorchServe",
    params(("model" = String, Path, description = "A served model's name")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "The image file as the raw body (`curl -T 7.png`); multipart `data`/`file` and JSON `{\"data\": \"<base64>\"}` work too"),
    responses(
        (status = 200, description = "The class", body = usize, example = json!(7)),
        (status = 400, description = "No image, or an undecodable one", body = TorchServeErrorBody),
        (status = 404, description = "A model or version not served", body = TorchServeErrorBody),
        (status = 413, description = "The upload or the image is too large", body = TorchServeErrorBody),
    )
)]
pub async fn predictions(
    request: HttpRequest,
    model: Model,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, TorchServeError> {
    predict_one(&request, &model, payload, &state).await
}

/// The same, for a named version of the model.
#[utoipa::path(
    post,
    path = "/predictions/{model}/{version}",
    tag = "TorchServe",
    params(
        ("model" = String, Path, description = "A served model's name"),
        ("version" = String, Path, description = "Its version"),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "The class", body = usize, example = json!(7)),
        (status = 404, description = "A model or version not served", body = TorchServeErrorBody),
    )
)]
pub async fn versioned_predictions(
    request: HttpRequest,
    model: Model,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, TorchServeError> {
    predict_one(&request, &model, payload, &state).await
}

async fn predict_one(
    request: &HttpRequest,
    model: &ServedModel,
    payload: web::Payload,
    state: &AppState,
) -> Result<HttpResponse, TorchServeError> {
    let body = read_request(request, payload, state).await?;
    let classifications = classify(model, vec![Instance::File(body.file)]).await?;
    let class = classifications
        .first()
        .map(|classification| classification.class)
        .ok_or_else(|| ApiError::Internal("the model returned no prediction".into()))?;
    Ok(HttpResponse::Ok().json(class))
}

/// Integrated Gradients of the image, as TorchServe's MNIST example answers them: `[[[…28]…28]]`,
/// with its handler's steps (15). The target is `target` from a JSON or multipart body, else the
/// predicted digit (TorchServe's handler uses class 0 when none is given).
#[utoipa::path(
    post,
    path = "/explanations/{model}",
    tag = "TorchServe",
    params(("model" = String, Path, description = "A served model's name")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "The image, in any body `/predictions/{model}` takes; JSON and multipart bodies may carry `target`"),
    responses(
        (status = 200, description = "The attributions in the input's shape, [1][28][28] for the digit models", body = Vec<Vec<Vec<f32>>>),
        (status = 400, description = "No image, an undecodable one, or a bad target", body = TorchServeErrorBody),
        (status = 404, description = "A model not served", body = TorchServeErrorBody),
    )
)]
pub async fn explanations(
    request: HttpRequest,
    model: Model,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, TorchServeError> {
    let body = read_request(&request, payload, &state).await?;
    let info = model.info();
    let explained = explain(
        &model,
        Instance::File(body.file),
        body.target,
        info.explanation.steps,
    )
    .await?;
    Ok(HttpResponse::Ok().json(Nested {
        values: &explained.explanation.attributions,
        shape: &info.input.shape,
    }))
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

/// TorchServe's management API: the models served.
#[utoipa::path(get, path = "/models", tag = "TorchServe", responses((status = 200, body = ModelList)))]
pub async fn models(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(ModelList {
        models: state
            .registry
            .all()
            .iter()
            .map(|served| ModelEntry {
                model_name: served.info().name.clone(),
                model_url: served.url.clone(),
            })
            .collect(),
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
    /// The network, recognised from the state dict.
    #[schema(example = "Net")]
    architecture: &'static str,
    #[schema(example = 1)]
    batch_size: usize,
    loaded_at_startup: bool,
    #[schema(example = "READY")]
    status: &'static str,
}

/// TorchServe's management API: a model described, as a one-element list.
#[utoipa::path(
    get,
    path = "/models/{model}",
    tag = "TorchServe",
    params(("model" = String, Path, description = "A served model's name")),
    responses(
        (status = 200, body = Vec<ModelDescription>),
        (status = 404, description = "A model not served", body = TorchServeErrorBody),
    )
)]
pub async fn describe_model(model: Model, state: web::Data<AppState>) -> HttpResponse {
    let info = model.info();
    HttpResponse::Ok().json([ModelDescription {
        model_name: info.name.clone(),
        model_version: info.version.clone(),
        model_url: model.url.clone(),
        runtime: "rust",
        architecture: info.architecture.name(),
        batch_size: state.settings.limits.max_instances,
        loaded_at_startup: true,
        status: "READY",
    }])
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
