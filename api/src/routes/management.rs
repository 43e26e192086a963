//! TorchServe's management API, in its request and response shapes: list and describe (also on
//! the inference listener), and, on the management listener only, register from the model store,
//! unregister, scale, set the default version. Registering and unregistering take effect at
//! once; requests in flight finish on the model they started with.
//!
//! Parameters are read as TorchServe reads them (see [`crate::parameters`]), and each case answered with
//! the status its `ManagementRequestHandler` and `ApiUtils` give, except where this server is
//! deliberately safer: a `url` is never fetched, and a negative count, size or timeout is a 400
//! where TorchServe would take it and fail later.

mod paths;
mod refusal;

use actix_web::http::StatusCode;
use actix_web::{middleware, web, HttpMessage, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::endpoints;
use crate::errors::{ApiError, TorchServeError, TorchServeErrorBody};
use crate::model_store;
use crate::parameters::Parameters;
use crate::registry::{Registration, ServedModel};
use crate::resolved::Resolved;
use crate::state::AppState;
use crate::upload::read_body;
use refusal::{version_not_found, Refusal};

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
    /// Where the next page starts, present when this one ends at or before the end of the list
    /// (as TorchServe gives it): pass it as `next_page_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
    models: Vec<ModelEntry>,
}

/// TorchServe's `GET /models`: the models served, by name, `limit` (default 100) at a time from
/// `next_page_token`.
#[utoipa::path(get, path = endpoints::MODELS, tag = "TorchServe",
    params(
        ("limit" = Option<String>, Query, description = "Most models to list: a whole number up to 100; anything else (empty, negative, not a number) is the default, 100, as TorchServe reads it"),
        ("next_page_token" = Option<String>, Query, description = "Where the previous page ended: a whole number; anything else starts at the beginning, as TorchServe reads it"),
    ),
    responses((status = 200, body = ModelList), (status = 400, body = TorchServeErrorBody)))]
pub async fn models(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Refusal> {
    list(&state, request.query_string())
}

/// As TorchServe's `ApiUtils.getModelList`: names sorted; a `limit` beyond 0..=100 is 100, a
/// negative token 0; a next token whenever the page reaches the end of the list or stops short
/// of it.
fn list(state: &AppState, query: &str) -> Result<HttpResponse, Refusal> {
    let parameters = Parameters::from_query(query, &["limit", "next_page_token"])?;
    let limit = match parameters.int("limit", 100) {
        limit @ 0..=100 => limit as usize,
        _ => 100,
    };
    let start = parameters.int("next_page_token", 0).max(0) as usize;
    let mut all: Vec<_> = state.registry.all().iter().cloned().collect();
    all.sort_by(|a, b| a.info().name.cmp(&b.info().name));
    let last = start.saturating_add(limit);
    let (end, next_page_token) = if last > all.len() {
        (all.len(), None)
    } else {
        (last, Some(last.to_string()))
    };
    Ok(HttpResponse::Ok().json(ModelList {
        next_page_token,
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
    /// The `runtime` the registration named (`python`, `python3`, `LSP`), else `rust`.
    #[schema(example = "rust")]
    runtime: String,
    /// The network, recognised from the state dict (`ONNX` for a graph).
    #[schema(example = "Net")]
    architecture: String,
    /// As registered or scaled; else the runners of the model's expensive work (setting
    /// limits.runners_per_model).
    min_workers: usize,
    max_workers: usize,
    /// As registered; else the most instances one request may classify in one forward pass
    /// (limits.max_instances).
    batch_size: usize,
    /// As registered (milliseconds); else 0: requests are never held back to be batched.
    max_batch_delay: u64,
    /// As registered (seconds); else TorchServe's default, 120.
    response_timeout: u64,
    /// As registered (seconds); else TorchServe's default, 120.
    startup_timeout: u64,
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

/// TorchServe's `default_response_timeout` and `default_startup_timeout`, in seconds.
const DEFAULT_TIMEOUT: u64 = 120;

fn description(served: &ServedModel, state: &AppState) -> ModelDescription {
    let info = served.info();
    let runners = state.registry.runners();
    let registration = served.registration();
    ModelDescription {
        model_name: info.name.clone(),
        model_version: info.version.clone(),
        model_url: served.url.clone(),
        engine: "max-mnist",
        runtime: registration.runtime.unwrap_or_else(|| "rust".into()),
        architecture: info.network.name.clone(),
        min_workers: registration.min_workers.unwrap_or(runners),
        max_workers: registration.max_workers.unwrap_or(runners),
        batch_size: registration
            .batch_size
            .unwrap_or(state.settings.limits.max_instances),
        max_batch_delay: registration.max_batch_delay.unwrap_or(0),
        response_timeout: registration.response_timeout.unwrap_or(DEFAULT_TIMEOUT),
        startup_timeout: registration.startup_timeout.unwrap_or(DEFAULT_TIMEOUT),
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

/// The model `name` (of `version`, when given), or a 404 typed as TorchServe types it:
/// `ModelVersionNotFoundException` when only the version is unknown.
fn find(
    state: &AppState,
    name: &str,
    version: Option<&str>,
) -> Result<std::sync::Arc<ServedModel>, Refusal> {
    state
        .registry
        .resolve(name, version)
        .map_err(|error| typed_404(state, name, version, error))
}

fn typed_404(state: &AppState, name: &str, version: Option<&str>, error: ApiError) -> Refusal {
    match (error, version) {
        (ApiError::NotFound(message), Some(_)) if state.registry.resolve(name, None).is_ok() => {
            version_not_found(message)
        }
        // TorchServe's `ApiUtils.unregisterModel`: a default version with others beside it.
        (ApiError::Forbidden(message), _) => Refusal::Typed {
            status: StatusCode::FORBIDDEN,
            kind: "InvalidModelVersionException",
            message,
            allow: None,
        },
        (error, _) => error.into(),
    }
}

/// TorchServe's `GET /models/{model}[/{version}]`: a model described (its default version, or
/// the one named), as a one-element list; `/models/{model}/all`: every version.
#[utoipa::path(
    get,
    path = endpoints::MODEL,
    tag = "TorchServe",
    params(("model" = String, Path, description = "A served model's name")),
    responses(
        (status = 200, body = Vec<ModelDescription>),
        (status = 404, description = "A model not served", body = TorchServeErrorBody),
    )
)]
pub async fn describe_model(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Refusal> {
    let info = request.match_info();
    let name = info.get("model").unwrap_or_default();
    describe(&state, name, info.get("version"), request.query_string())
}

/// As TorchServe's `handleDescribeModel`: `customized=true` asks the model's handler for its own
/// metadata, which TorchServe's standard handlers do not give, nor do the models served here.
fn describe(
    state: &AppState,
    name: &str,
    version: Option<&str>,
    query: &str,
) -> Result<HttpResponse, Refusal> {
    let parameters = Parameters::from_query(query, &["customized"])?;
    let described: Vec<_> = if version == Some("all") {
        let versions = state.registry.versions(name);
        if versions.is_empty() {
            find(state, name, None)?;
        }
        versions
    } else {
        vec![find(state, name, version)?]
    };
    if parameters.flag("customized", false) {
        log::info!("describing `{name}` with customized=true: its handler adds no metadata here");
    }
    let described: Vec<_> = described
        .iter()
        .map(|served| description(served, state))
        .collect();
    Ok(HttpResponse::Ok().json(described))
}

#[derive(Serialize)]
struct Status {
    status: String,
}

/// TorchServe's `{"status": "…"}` answer.
fn status(code: StatusCode, status: String) -> HttpResponse {
    HttpResponse::build(code).json(Status { status })
}

/// TorchServe's registration parameters (`RegisterModelRequest`).
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

/// The runtimes TorchServe's `Manifest.RuntimeType.fromValue` knows, spelt as it spells them.
const RUNTIMES: [&str; 3] = ["python", "python3", "LSP"];

/// A registration request read as TorchServe's `RegisterModelRequest` and `ApiUtils.registerModel`
/// read it.
struct RegisterRequest {
    url: String,
    name: Option<String>,
    initial_workers: usize,
    synchronous: bool,
    registration: Registration,
}

impl RegisterRequest {
    fn read(parameters: &Parameters, default_workers: usize) -> Result<Self, ApiError> {
        let runtime = parameters.text("runtime").map(str::to_owned);
        if let Some(runtime) = &runtime {
            if !RUNTIMES.contains(&runtime.as_str()) {
                return Err(ApiError::BadRequest(format!(
                    "Invalid RuntimeType value: `{runtime}`: give python, python3 or LSP (the model runs natively here whichever is named)"
                )));
            }
        }
        if let Some(handler) = parameters.text("handler") {
            log::info!(
                "handler `{}` is TorchServe's Python entry point: no Python is run here, the model is served by its network's own code",
                handler.escape_debug()
            );
        }
        if parameters.flag("s3_sse_kms", false) {
            log::info!("s3_sse_kms=true: nothing is fetched from S3 here, the model comes from the model store");
        }
        let default_workers = i32::try_from(default_workers).unwrap_or(i32::MAX);
        let initial_workers = parameters.int("initial_workers", default_workers);
        let initial_workers = usize::try_from(initial_workers).map_err(|_| {
            ApiError::BadRequest(format!(
                "initial_workers is {initial_workers}: give 0 or more workers"
            ))
        })?;
        let registration = Registration {
            min_workers: Some(initial_workers),
            max_workers: Some(initial_workers),
            batch_size: given(parameters, "batch_size", -1, 1)?,
            max_batch_delay: given(parameters, "max_batch_delay", -100, 0)?,
            response_timeout: given(parameters, "response_timeout", -1, 0)?,
            startup_timeout: given(parameters, "startup_timeout", -1, 0)?,
            runtime,
        };
        let url = parameters.text("url").ok_or_else(|| {
            ApiError::BadRequest(
                "Parameter `url` is required: name a .mar file in the model store, e.g. `url=mnist.mar`".into(),
            )
        })?;
        Ok(Self {
            url: url.to_owned(),
            name: parameters
                .text("model_name")
                .filter(|name| !name.is_empty())
                .map(str::to_owned),
            initial_workers,
            synchronous: parameters.flag("synchronous", true),
            registration,
        })
    }
}

/// `key` as TorchServe's registration reads it: `unset` (its value for "not given", also what
/// an empty or malformed value becomes) is `None`; else a number of at least `least`.
fn given<T: TryFrom<i32>>(
    parameters: &Parameters,
    key: &str,
    unset: i32,
    least: i32,
) -> Result<Option<T>, ApiError> {
    let value = parameters.int(key, unset);
    if value == unset {
        return Ok(None);
    }
    if value < least {
        return Err(ApiError::BadRequest(format!(
            "{key} is {value}: give {least} or more (or leave it out for the default)"
        )));
    }
    Ok(T::try_from(value).ok())
}

/// TorchServe's `POST /models?url=FILE[&model_name=NAME]…` (or the same as a JSON body): loads FILE
/// from the model store and serves it at once.
async fn register(
    request: &HttpRequest,
    state: &web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, Refusal> {
    let limits = &state.settings.limits;
    let parameters = if request
        .content_type()
        .eq_ignore_ascii_case("application/json")
    {
        let body = read_body(payload, limits).await?;
        Parameters::from_json(&body, REGISTER_PARAMETERS, limits)?
    } else {
        Parameters::from_query(request.query_string(), REGISTER_PARAMETERS)?
    };
    let asked = RegisterRequest::read(&parameters, state.registry.runners())?;
    let served =
        model_store::register_with(state, &asked.url, asked.name, asked.registration).await?;
    let (name, version) = (&served.info().name, &served.info().version);
    log::info!(
        "registered model `{name}` version {version} from {}",
        asked.url
    );
    Ok(match (asked.initial_workers, asked.synchronous) {
        (0, _) => status(
            StatusCode::OK,
            format!("Model \"{name}\" Version: {version} registered with 0 initial workers. Use scale workers API to add workers for the model."),
        ),
        (_, false) => status(StatusCode::ACCEPTED, "Processing worker updates...".into()),
        (workers, true) => status(
            StatusCode::OK,
            format!("Model \"{name}\" Version: {version} registered with {workers} initial workers"),
        ),
    })
}

/// TorchServe's `DELETE /models/{model}[/{version}]` (which reads no parameter; `synchronous` and
/// `timeout`, which scripts send, are taken and have nothing to change: unregistering is
/// immediate here).
fn unregister(
    state: &AppState,
    name: &str,
    version: Option<&str>,
    query: &str,
) -> Result<HttpResponse, Refusal> {
    let parameters = Parameters::from_query(query, &["synchronous", "timeout"])?;
    parameters.flag("synchronous", false);
    parameters.int("timeout", -1);
    let removed = state
        .unregister(name, version)
        .map_err(|error| typed_404(state, name, version, error))?;
    log::info!(
        "unregistered model `{}` version {}",
        removed.info().name,
        removed.info().version
    );
    Ok(status(
        StatusCode::OK,
        format!("Model \"{}\" unregistered", removed.info().name),
    ))
}

/// TorchServe's `PUT /models/{model}[/{version}]?min_worker=…`, read as `handleScaleModel` reads
/// it (min_worker default 1, max_worker default min_worker, `model_version` when the path has
/// none) and answered as `ApiUtils.updateModelWorkers` answers: 202 "Processing worker
/// updates...", or with `synchronous=true` 200 and the worker count. The counts asked for are
/// kept and described; each model keeps its fixed runners (limits.runners_per_model),
/// which the synchronous answer gives, and the log says so.
fn scale(
    state: &AppState,
    name: &str,
    version: Option<&str>,
    query: &str,
) -> Result<HttpResponse, Refusal> {
    let parameters = Parameters::from_query(
        query,
        &[
            "min_worker",
            "max_worker",
            "number_gpu",
            "synchronous",
            "timeout",
            "model_version",
        ],
    )?;
    let min = parameters.int("min_worker", 1);
    let max = parameters.int("max_worker", min);
    let (Ok(min), Ok(max)) = (usize::try_from(min), usize::try_from(max)) else {
        return Err(ApiError::BadRequest(format!(
            "min_worker is {min} and max_worker {max}: give 0 or more workers"
        ))
        .into());
    };
    if max < min {
        return Err(ApiError::BadRequest(format!(
            "max_worker cannot be less than min_worker: max_worker is {max}, min_worker {min}"
        ))
        .into());
    }
    let version = version.or_else(|| parameters.text("model_version"));
    let served = find(state, name, version)?;
    if parameters.int("number_gpu", 0) > 0 {
        log::info!("number_gpu for model `{name}`: this server runs its models on the CPU");
    }
    parameters.int("timeout", -1);
    served.set_workers(min, max);
    let runners = state.registry.runners();
    log::info!(
        "scaling model `{name}` to min_worker {min}, max_worker {max}: recorded; it keeps its {runners} runners (setting limits.runners_per_model)"
    );
    if !parameters.flag("synchronous", false) {
        return Ok(status(
            StatusCode::ACCEPTED,
            "Processing worker updates...".into(),
        ));
    }
    let version = version
        .map(|version| format!(", version: {version}"))
        .unwrap_or_default();
    Ok(status(
        StatusCode::OK,
        format!("Workers scaled to {runners} for model: {name}{version}"),
    ))
}

/// TorchServe's `PUT /models/{model}/{version}/set-default`: requests that name no version get
/// this one from now on.
fn set_default(
    state: &AppState,
    name: &str,
    version: &str,
    query: &str,
) -> Result<HttpResponse, Refusal> {
    Parameters::from_query(query, &[])?;
    state
        .set_default_version(name, version)
        .map_err(|error| typed_404(state, name, Some(version), error))?;
    log::info!("model `{name}` now answers with version {version} by default");
    Ok(status(
        StatusCode::OK,
        format!("Default version successfully updated for model \"{name}\" to \"{version}\""),
    ))
}

/// `/models` and `/models/{model}[/{version}]`, read-only: on the inference listener.
pub fn configure_read_only(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource(endpoints::MODELS).route(web::get().to(models)))
        .service(web::resource(endpoints::MODEL).route(web::get().to(describe_model)))
        .service(web::resource(endpoints::VERSIONED_MODEL).route(web::get().to(describe_model)));
}

/// KServe v2's readiness, an unknown model refused in the listener's (TorchServe's) shape.
async fn v2_ready(model: Resolved<TorchServeError>) -> HttpResponse {
    super::kserve_v2::model_ready(Resolved::from(model.served.clone())).await
}

/// The management API on a listener it shares with the inference API (TorchServe's
/// `inference_address == management_address`): TorchServe's `/models…` paths and KServe v2's
/// repository extension; every other path is the inference API's.
pub fn configure_shared(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(endpoints::MODELS)
            .wrap(middleware::from_fn(refusal::fill_empty_refusals))
            .default_service(web::to(paths::dispatch)),
    )
    .configure(super::kserve_v2::repository::configure);
}

/// The management listener: TorchServe's management API (every path as TorchServe's handler
/// reads it), KServe's model health checks, and KServe v2's repository extension. Every 404 and
/// 405 has a body in TorchServe's shape.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("")
            .wrap(middleware::from_fn(refusal::fill_empty_refusals))
            .configure(super::kserve_v2::repository::configure)
            .service(web::resource(endpoints::V2_MODEL_READY).route(web::get().to(v2_ready)))
            .service(
                web::resource(endpoints::V2_VERSIONED_MODEL_READY).route(web::get().to(v2_ready)),
            )
            .default_service(web::to(paths::dispatch)),
    );
}
