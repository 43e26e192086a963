//! TorchServe's management API, in its request and response shapes: list and describe (also on
//! the inference listener), and, on the management listener only, register from the model store,
//! unregister, scale, set the default version. Registering and unregistering take effect at
//! once; requests in flight finish on the model they started with.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::errors::{ApiError, TorchServeError, TorchServeErrorBody};
use crate::model_store;
use crate::registry::{Resolved, ServedModel};
use crate::upload::parse_number;
use crate::AppState;

type Model = Resolved<TorchServeError>;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelEntry {
    #[schema(example = "mnist")]
    model_name: String,
    #[schema(example = "mnist.mar")]
    model_url: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelList {
    /// Present when more models follow: pass it as `next_page_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
    models: Vec<ModelEntry>,
}

/// TorchServe's `GET /models`: the models served, `limit` (default 100) at a time from
/// `next_page_token`.
#[utoipa::path(get, path = "/models", tag = "TorchServe",
    params(
        ("limit" = Option<u64>, Query, maximum = 18446744073709551615_u64, description = "Most models to list (default 100)"),
        ("next_page_token" = Option<u64>, Query, maximum = 18446744073709551615_u64, description = "Where the previous page ended"),
    ),
    responses((status = 200, body = ModelList), (status = 400, body = TorchServeErrorBody)))]
pub async fn models(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, TorchServeError> {
    let query = Query::parse(&request, &["limit", "next_page_token"])?;
    let limit = query.number("limit")?.unwrap_or(100).max(1);
    let start = query.number("next_page_token")?.unwrap_or(0);
    let all = state.registry.all();
    let end = start.saturating_add(limit).min(all.len());
    Ok(HttpResponse::Ok().json(ModelList {
        next_page_token: (end < all.len()).then(|| end.to_string()),
        models: all
            .get(start..end)
            .unwrap_or_default()
            .iter()
            .map(|served| ModelEntry {
                model_name: served.info().name.clone(),
                model_url: served.url.clone(),
            })
            .collect(),
    }))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelDescription {
    #[schema(example = "mnist")]
    model_name: String,
    #[schema(example = "1.0")]
    model_version: String,
    #[schema(example = "mnist.mar")]
    model_url: String,
    #[schema(example = "max-mnist")]
    engine: &'static str,
    #[schema(example = "rust")]
    runtime: &'static str,
    /// The network, recognised from the state dict.
    #[schema(example = "Net")]
    architecture: &'static str,
    /// The runners of the model's expensive work (setting limits.max_concurrent_decodes).
    min_workers: usize,
    max_workers: usize,
    /// Most instances one request may classify in one forward pass (limits.max_instances).
    batch_size: usize,
    /// Requests are never held back to be batched with others.
    max_batch_delay: u64,
    loaded_at_startup: bool,
    workers: Vec<Worker>,
    job_queue_status: JobQueueStatus,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Worker {
    #[schema(example = "9000")]
    id: String,
    /// When the model began serving.
    start_time: String,
    #[schema(example = "READY")]
    status: &'static str,
    gpu: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobQueueStatus {
    /// Requests waiting for a runner.
    pending_requests: usize,
}

fn describe(served: &ServedModel, state: &AppState) -> ModelDescription {
    let info = served.info();
    let runners = state.registry.runners();
    ModelDescription {
        model_name: info.name.clone(),
        model_version: info.version.clone(),
        model_url: served.url.clone(),
        engine: "max-mnist",
        runtime: "rust",
        architecture: info.architecture.name(),
        min_workers: runners,
        max_workers: runners,
        batch_size: state.settings.limits.max_instances,
        max_batch_delay: 0,
        loaded_at_startup: served.loaded_at_startup,
        workers: (0..runners)
            .map(|runner| Worker {
                id: (9000 + runner).to_string(),
                start_time: served.serving_since.clone(),
                status: "READY",
                gpu: false,
            })
            .collect(),
        job_queue_status: JobQueueStatus {
            pending_requests: served.work_queue.pending(),
        },
    }
}

/// TorchServe's `GET /models/{model}[/{version}]`: a model described, as a one-element list
/// (also `/models/{model}/all`, every version: each model has one here).
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
    HttpResponse::Ok().json([describe(&model, &state)])
}

#[derive(Serialize)]
struct Status {
    status: String,
}

/// TorchServe's `{"status": "…"}` answer.
fn status(status: String) -> HttpResponse {
    HttpResponse::Ok().json(Status { status })
}

/// TorchServe's registration parameters: all but `url` and `model_name` configure its Python
/// workers, and are checked, then ignored.
const REGISTER_PARAMETERS: &[&str] = &[
    "url",
    "model_name",
    "initial_workers",
    "synchronous",
    "batch_size",
    "max_batch_delay",
    "response_timeout",
    "startup_timeout",
    "handler",
    "runtime",
    "s3_sse_kms",
];

/// TorchServe's `POST /models?url=FILE[&model_name=NAME]…`: loads FILE from the model store and
/// serves it at once.
async fn register(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, TorchServeError> {
    let query = Query::parse(&request, REGISTER_PARAMETERS)?;
    let workers = query.number("initial_workers")?;
    for number in [
        "batch_size",
        "max_batch_delay",
        "response_timeout",
        "startup_timeout",
    ] {
        query.number(number)?;
    }
    query.flag("synchronous")?;
    let url = query.get("url").unwrap_or_default();
    let served =
        model_store::register(&state, url, query.get("model_name").map(str::to_owned)).await?;
    let workers = workers.unwrap_or(state.registry.runners());
    log::info!(
        "registered model `{}` version {} from {url}",
        served.info().name,
        served.info().version
    );
    Ok(status(format!(
        "Model \"{}\" Version: {} registered with {workers} initial workers",
        served.info().name,
        served.info().version
    )))
}

/// TorchServe's `DELETE /models/{model}[/{version}]`.
async fn unregister(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, TorchServeError> {
    let name = request.match_info().get("model").unwrap_or_default();
    let removed = state.unregister(name, request.match_info().get("version"))?;
    log::info!(
        "unregistered model `{}` version {}",
        removed.info().name,
        removed.info().version
    );
    Ok(status(format!(
        "Model \"{}\" unregistered",
        removed.info().name
    )))
}

/// TorchServe's `PUT /models/{model}[/{version}]?min_worker=…`: checked and answered as
/// TorchServe does (202 "Processing worker updates...", or with `synchronous=true` 200 and the
/// worker count), but each model keeps its fixed runners (`limits.max_concurrent_decodes`): the
/// synchronous answer gives that count, and the log says so.
async fn scale(
    model: Model,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, TorchServeError> {
    let query = Query::parse(
        &request,
        &["min_worker", "max_worker", "synchronous", "timeout"],
    )?;
    let min = query.number("min_worker")?;
    let max = query.number("max_worker")?;
    if let (Some(min), Some(max)) = (min, max) {
        if min > max {
            return Err(ApiError::BadRequest(format!(
                "min_worker ({min}) is more than max_worker ({max})"
            ))
            .into());
        }
    }
    let synchronous = query.flag("synchronous")?.unwrap_or(false);
    if let Some(timeout) = query.get("timeout") {
        timeout.parse::<i64>().map_err(|_| {
            ApiError::BadRequest(format!(
                "`timeout` is `{timeout}`, not a whole number of seconds (-1: wait for ever)"
            ))
        })?;
    }
    let runners = state.registry.runners();
    let info = model.info();
    log::info!(
        "scaling model `{}` (min_worker {min:?}, max_worker {max:?}) accepted: it keeps its {runners} runners (setting limits.max_concurrent_decodes)",
        info.name
    );
    if !synchronous {
        return Ok(HttpResponse::Accepted().json(Status {
            status: "Processing worker updates...".into(),
        }));
    }
    let version = request
        .match_info()
        .get("version")
        .map(|version| format!(", version: {version}"))
        .unwrap_or_default();
    Ok(status(format!(
        "Workers scaled to {runners} for model: {}{version}",
        info.name
    )))
}

/// TorchServe's `PUT /models/{model}/{version}/set-default`: each model has one version here.
async fn set_default(model: Model) -> HttpResponse {
    status(format!(
        "Default version successfully updated for model \"{}\" to \"{}\"",
        model.info().name,
        model.info().version
    ))
}

/// A query string's parameters, each named at most once and each a known one.
struct Query(HashMap<String, String>);

impl Query {
    fn parse(request: &HttpRequest, known: &[&str]) -> Result<Self, ApiError> {
        let pairs = web::Query::<Vec<(String, String)>>::from_query(request.query_string())
            .map_err(|err| ApiError::BadRequest(format!("the query string cannot be read: {err}")))?
            .into_inner();
        let mut parameters = HashMap::new();
        for (key, value) in pairs {
            if !known.contains(&key.as_str()) {
                return Err(ApiError::BadRequest(format!(
                    "unknown parameter `{key}`: this route takes {}",
                    known.join(", ")
                )));
            }
            if parameters.insert(key.clone(), value).is_some() {
                return Err(ApiError::BadRequest(format!(
                    "the parameter `{key}` is given twice: give it once"
                )));
            }
        }
        Ok(Self(parameters))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn number(&self, key: &str) -> Result<Option<usize>, ApiError> {
        self.get(key)
            .map(|value| parse_number(value, key))
            .transpose()
    }

    fn flag(&self, key: &str) -> Result<Option<bool>, ApiError> {
        self.get(key)
            .map(|value| match value.to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(ApiError::BadRequest(format!(
                    "`{key}` is `{value}`: give true or false"
                ))),
            })
            .transpose()
    }
}

/// `/models` and `/models/{model}[/{version}]`, read-only: on both listeners.
pub fn configure_read_only(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/models").route(web::get().to(models)))
        .service(web::resource("/models/{model}").route(web::get().to(describe_model)))
        .service(web::resource("/models/{model}/all").route(web::get().to(describe_model)))
        .service(web::resource("/models/{model}/{version}").route(web::get().to(describe_model)));
}

/// The management listener's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/models")
            .route(web::get().to(models))
            .route(web::post().to(register)),
    )
    .service(web::resource("/models/{model}/all").route(web::get().to(describe_model)))
    .service(
        web::resource("/models/{model}/{version}/set-default").route(web::put().to(set_default)),
    )
    .service(
        web::resource("/models/{model}")
            .route(web::get().to(describe_model))
            .route(web::delete().to(unregister))
            .route(web::put().to(scale)),
    )
    .service(
        web::resource("/models/{model}/{version}")
            .route(web::get().to(describe_model))
            .route(web::delete().to(unregister))
            .route(web::put().to(scale)),
    );
    super::kserve_v2::repository::configure(cfg);
}
