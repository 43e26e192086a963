//! TorchServe's inference routes, as TorchServe's examples answer them:
//! `/predictions/{model}[/{version}]`, `/explanations/{model}[/{version}]` (both with POST or
//! PUT); and the read-only part of its management API (`/models[/{model}]`), which the management
//! listener serves in full.

use actix_multipart::Multipart;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use max_mnist_core::{Answer, InputKind};

use crate::endpoints;
use crate::errors::{ApiError, TorchServeError, TorchServeErrorBody};
use crate::inference::{classify, explain, first_and_mean, FeatureMap, Nested};
use crate::instance::Instance;
use crate::options::{Options, EXPLANATIONS_OPTIONS};
use crate::registry::ServedModel;
use crate::resolved::Resolved;
use crate::state::AppState;
use crate::tabular;
use crate::upload::{
    content_type, decode_base64, first_part, parse_json, parse_number, read_body, read_multipart,
    text_part,
};

type TorchServeModel = Resolved<TorchServeError>;

const BODY_DESCRIPTION: &str = "An image model: the image file as the raw body (`curl -T 7.png`), multipart `data` (or `file`), or JSON `{\"data\": \"<base64>\"}`. A tabular model: CSV with a header row (`text/csv`, or the multipart file), or JSON records (an object, a list of objects, or `{\"data\": [...]}`)";

/// What `/predictions/{model}` answers, as the model's handler did: an image's class, a label per
/// row, or the most probable labels with their probabilities.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // documents the answer; the handler writes either
pub enum Prediction {
    /// The class of an image model's input.
    #[schema(example = 7)]
    Class(usize),
    /// A tabular model's label per row, in order.
    #[schema(example = json!(["positive", "negative"]))]
    Labels(Vec<String>),
    /// The most probable labels and their probabilities, most probable first (TorchServe's
    /// `image_classifier` handler).
    #[schema(example = json!({"tabby": 0.41, "tiger_cat": 0.32}))]
    TopLabels(std::collections::HashMap<String, f32>),
}

/// What `/explanations/{model}` answers in JSON: an image's attributions in its shape, or a tabular
/// model's mean attribution per feature.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // documents the answer; the handler writes either
pub enum TorchServeExplanation {
    /// In the input's shape: `[1][H][W]` for a grayscale image model.
    Shaped(Vec<serde_json::Value>),
    /// The mean attribution per feature over the rows, `{"age": …}`.
    Named(std::collections::HashMap<String, f32>),
}

const BODY_HINT: &str = "send the image as the raw body (`curl -T 0.png`), as multipart field `data` or `file`, or as JSON `{\"data\": \"<base64>\"}`";

/// `{"data": "<base64 image>"}`, for an image model (TorchServe handlers also read `body`); a
/// tabular model takes JSON records instead: an object, a list of objects, or `{"data": [...]}`.
#[derive(Deserialize, ToSchema)]
pub struct Base64Image {
    /// The image file's bytes in base64.
    #[serde(alias = "body")]
    #[schema(example = json!(super::SEVEN_PNG_BASE64))]
    data: String,
    #[schema(schema_with = class_number_or_null)]
    target: Option<usize>,
}

/// `target`: a whole number from 0, without int64's bound (any number a `usize` holds is read, and
/// one the model does not have is a 400 where it matters).
fn class_number() -> utoipa::openapi::Object {
    class_number_of(utoipa::openapi::Type::Integer.into())
}

/// `target` in JSON, where `null` is the same as leaving it out.
fn class_number_or_null() -> utoipa::openapi::Object {
    use utoipa::openapi::{schema::SchemaType, Type};
    class_number_of(SchemaType::from_iter([Type::Integer, Type::Null]))
}

fn class_number_of(schema_type: utoipa::openapi::schema::SchemaType) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(schema_type)
        .minimum(Some(0))
        .description(Some(
            "The class to explain (explanations only; default: the model's)",
        ))
        .build()
}

/// The raw body: an image file (`curl -T 7.png`), as Swagger UI's file picker sends it.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // documents the body; the handler reads the bytes
pub struct ImageFile(Bytes);

/// A multipart upload, as TorchServe's handlers read one.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the form; the handler reads the parts
pub struct TorchServeForm {
    /// The file: an image, or a CSV with a header row for a tabular model. `file` is read too.
    #[schema(value_type = String, format = Binary)]
    data: Bytes,
    #[schema(schema_with = class_number)]
    target: Option<String>,
}

/// What a TorchServe request carries: its instances, and the class to explain when it names one.
struct TorchServeBody {
    instances: Vec<Instance>,
    target: Option<usize>,
}

/// The instances of any body the model's TorchServe handler accepts: an image (raw, multipart, or
/// base64 JSON) for an image model, rows (CSV, JSON records) for a tabular one.
async fn read_request(
    request: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    model: &ServedModel,
) -> Result<TorchServeBody, ApiError> {
    if model.info().input.kind == InputKind::Features {
        let body = tabular::read(request, payload, &state.settings).await?;
        return Ok(TorchServeBody {
            instances: body.instances,
            target: body.target,
        });
    }
    let file = |file: Bytes| vec![Instance::File(file)];
    let limits = &state.settings.limits;
    let content_type = content_type(request);
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
            .map(|value| parse_number(&value, "target"))
            .transpose()?;
        return Ok(TorchServeBody {
            instances: file(image),
            target,
        });
    }
    let body = read_body(payload, limits).await?;
    if content_type.starts_with("application/json") {
        let json: Base64Image = parse_json(&body, limits)?;
        return Ok(TorchServeBody {
            instances: file(decode_base64(&json.data)?),
            target: json.target,
        });
    }
    Ok(TorchServeBody {
        instances: file(body),
        target: None,
    })
}

/// Classifies an image, answering the class as TorchServe's image classifiers do; or rows,
/// answering a label per row.
#[utoipa::path(
    method(post, put),
    path = endpoints::PREDICTIONS,
    tag = "TorchServe",
    params(("model" = String, Path, description = "A served model's name")),
    request_body(description = BODY_DESCRIPTION, content(
        (inline(ImageFile) = "application/octet-stream"),
        (TorchServeForm = "multipart/form-data"),
        (Base64Image = "application/json"),
        (inline(String) = "text/csv"),
    )),
    responses(
        (status = 200, description = "The class (an image), or a label per row",
            content((Prediction = "application/json")), example = json!(7)),
        (status = 400, description = "No input, or one the model cannot read (the message names the row and column)", body = TorchServeErrorBody),
        (status = 404, description = "A model or version not served", body = TorchServeErrorBody),
        (status = 408, description = "The request took longer than `limits.request_timeout_secs` to arrive", body = TorchServeErrorBody),
        (status = 413, description = "The upload or the image is too large", body = TorchServeErrorBody),
        (status = 415, description = "An SVG or a PDF", body = TorchServeErrorBody),
    )
)]
pub async fn predictions(
    request: HttpRequest,
    model: TorchServeModel,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, TorchServeError> {
    predict_one(&request, &model, payload, &state).await
}

/// The same, for a named version of the model.
#[utoipa::path(
    method(post, put),
    path = endpoints::VERSIONED_PREDICTIONS,
    tag = "TorchServe",
    params(
        ("model" = String, Path, description = "A served model's name"),
        ("version" = String, Path, description = "Its version"),
    ),
    request_body(description = BODY_DESCRIPTION, content(
        (inline(ImageFile) = "application/octet-stream"),
        (TorchServeForm = "multipart/form-data"),
        (Base64Image = "application/json"),
        (inline(String) = "text/csv"),
    )),
    responses(
        (status = 200, description = "The class (an image), or a label per row",
            content((Prediction = "application/json")), example = json!(7)),
        (status = 400, description = "No input, or one the model cannot read (the message names the row and column)", body = TorchServeErrorBody),
        (status = 404, description = "A model or version not served", body = TorchServeErrorBody),
        (status = 408, description = "The request took longer than `limits.request_timeout_secs` to arrive", body = TorchServeErrorBody),
        (status = 413, description = "The upload or the image is too large", body = TorchServeErrorBody),
        (status = 415, description = "An SVG or a PDF", body = TorchServeErrorBody),
    )
)]
pub async fn versioned_predictions(
    request: HttpRequest,
    model: TorchServeModel,
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
    let body = read_request(request, payload, state, model).await?;
    let classifications = classify(model, body.instances).await?;
    let info = model.info();
    let first = || {
        classifications
            .first()
            .ok_or_else(|| ApiError::Internal("the model returned no prediction".into()))
    };
    Ok(match info.output.answer {
        Answer::Class => HttpResponse::Ok().json(first()?.class),
        Answer::Label => {
            let labels: Vec<&str> = classifications
                .iter()
                .map(|c| info.output.label(c.class))
                .collect();
            HttpResponse::Ok().json(labels)
        }
        Answer::TopLabels(k) => {
            let (names, values): (Vec<String>, Vec<f32>) = first()?
                .top_k(k)
                .iter()
                .map(|p| (info.output.label(p.class).to_owned(), p.probability))
                .unzip();
            HttpResponse::Ok().json(FeatureMap {
                names: &names,
                values: &values,
            })
        }
    })
}

/// Integrated Gradients as the model's TorchServe handler computes them, with POST or PUT (`curl -T
/// 0.png`) as predictions: for an image its attributions in the image's shape, for rows the mean attribution per
/// feature, `{"feature_0": …}` (steps and target: the body's, else the model's handler's). `Accept: image/png` or `?format=png` answers a
/// picture: the heatmap, or a bar chart of the means.
#[utoipa::path(
    method(post, put),
    path = endpoints::EXPLANATIONS,
    tag = "TorchServe",
    params(
        ("model" = String, Path, description = "A served model's name"),
        ("format" = Option<String>, Query, description = "`png` for the picture"),
    ),
    request_body(description = "Any body `/predictions/{model}` takes: an image model's image as the raw body (`curl -T 0.png`), multipart, JSON base64 or a CSV; JSON and multipart bodies may carry `target`", content(
        (inline(ImageFile) = "application/octet-stream"),
        (TorchServeForm = "multipart/form-data"),
        (Base64Image = "application/json"),
        (inline(String) = "text/csv"),
    )),
    responses(
        (status = 200, description = "The attributions: in the input's shape ([1][H][W] for a grayscale image model), or the mean per feature ({\"feature_0\": …}); or their picture",
            content((TorchServeExplanation = "application/json"), (inline(ImageFile) = "image/png"))),
        (status = 400, description = "No input, one the model cannot read, or a bad target or format", body = TorchServeErrorBody),
        (status = 404, description = "A model not served", body = TorchServeErrorBody),
        (status = 408, description = "The request took longer than `limits.request_timeout_secs` to arrive", body = TorchServeErrorBody),
        (status = 413, description = "The upload or the image is too large", body = TorchServeErrorBody),
        (status = 415, description = "An SVG or a PDF", body = TorchServeErrorBody),
    )
)]
pub async fn explanations(
    request: HttpRequest,
    model: TorchServeModel,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, TorchServeError> {
    explain_request(&request, &model, payload, &state).await
}

/// The same, for a named version of the model.
#[utoipa::path(
    method(post, put),
    path = endpoints::VERSIONED_EXPLANATIONS,
    tag = "TorchServe",
    params(
        ("model" = String, Path, description = "A served model's name"),
        ("version" = String, Path, description = "Its version"),
        ("format" = Option<String>, Query, description = "`png` for the picture"),
    ),
    request_body(description = "Any body `/predictions/{model}` takes", content(
        (inline(ImageFile) = "application/octet-stream"),
        (TorchServeForm = "multipart/form-data"),
        (Base64Image = "application/json"),
        (inline(String) = "text/csv"),
    )),
    responses(
        (status = 200, description = "The attributions, or their picture",
            content((TorchServeExplanation = "application/json"), (inline(ImageFile) = "image/png"))),
        (status = 400, description = "No input, one the model cannot read, or a bad target or format", body = TorchServeErrorBody),
        (status = 404, description = "A model or version not served", body = TorchServeErrorBody),
        (status = 408, description = "The request took longer than `limits.request_timeout_secs` to arrive", body = TorchServeErrorBody),
        (status = 413, description = "The upload or the image is too large", body = TorchServeErrorBody),
        (status = 415, description = "An SVG or a PDF", body = TorchServeErrorBody),
    )
)]
pub async fn versioned_explanations(
    request: HttpRequest,
    model: TorchServeModel,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, TorchServeError> {
    explain_request(&request, &model, payload, &state).await
}

async fn explain_request(
    request: &HttpRequest,
    model: &ServedModel,
    payload: web::Payload,
    state: &AppState,
) -> Result<HttpResponse, TorchServeError> {
    let png = Options::new(request, &[], EXPLANATIONS_OPTIONS)?.wants_png(request)?;
    let body = read_request(request, payload, state, model).await?;
    let info = model.info();
    let target = body.target;
    let requests = body.instances.into_iter().map(|i| (i, target)).collect();
    let explained = explain(model, requests, info.explanation).await?;
    let (first, mean) = first_and_mean(&explained)?;
    if png {
        let picture = model
            .model
            .explanation_png(&first.input, &mean)
            .map_err(ApiError::from)?;
        return Ok(HttpResponse::Ok().content_type("image/png").body(picture));
    }
    if info.input.kind == InputKind::Features {
        return Ok(HttpResponse::Ok().json(FeatureMap {
            names: &info.input.feature_names,
            values: &mean.attributions,
        }));
    }
    Ok(HttpResponse::Ok().json(Nested {
        values: &first.explanation.attributions,
        shape: &info.input.shape,
    }))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource(endpoints::PREDICTIONS)
            .route(web::post().to(predictions))
            .route(web::put().to(predictions)),
    )
    .service(
        web::resource(endpoints::VERSIONED_PREDICTIONS)
            .route(web::post().to(versioned_predictions))
            .route(web::put().to(versioned_predictions)),
    )
    .service(
        web::resource(endpoints::EXPLANATIONS)
            .route(web::post().to(explanations))
            .route(web::put().to(explanations)),
    )
    .service(
        web::resource(endpoints::VERSIONED_EXPLANATIONS)
            .route(web::post().to(versioned_explanations))
            .route(web::put().to(versioned_explanations)),
    );
    super::management::configure_read_only(cfg);
}
