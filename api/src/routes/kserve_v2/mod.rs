//! KServe's v2 protocol (the Open Inference Protocol): server and model metadata, liveness and
//! readiness, and `infer` with BYTES (images) or numeric tensors, in JSON or with Triton's binary
//! tensor extension ([`binary`]); and `explain`, which TorchServe's `kservev2` envelope adds, on
//! the same bodies. What each model takes and gives comes from its description.

mod binary;
pub mod repository;
mod tensors;
pub mod types;

use actix_web::http::header::{HeaderValue, CONTENT_TYPE};
use actix_web::web::BytesMut;
use actix_web::{web, HttpRequest, HttpResponse};
use max_mnist_core::{InputKind, ModelInfo};
use serde_json::Value;

use crate::endpoints;
use crate::errors::{ApiError, KServeError, KServeErrorBody};
use crate::inference::{self, check_instance_count, classify, explanation_settings, json_number};
use crate::instance::Instance;
use crate::resolved::Resolved;
use crate::state::AppState;
use crate::upload::{parse_json, read_body};
use types::{
    BinaryParameters, InferRequest, InferResponse, Liveness, ModelReadiness, OutputData,
    OutputTensor, Readiness, ServerMetadata, TensorMetadata, V2ModelMetadata,
};

type KServeModel = Resolved<KServeError>;

const PREDICT: &str = "predict";
pub(crate) const PROBABILITIES: &str = "probabilities";
const OUTPUTS: [&str; 2] = [PREDICT, PROBABILITIES];
/// The output of `explain`, as TorchServe's `kservev2` envelope names it.
const EXPLAIN: &str = "explain";

/// Server metadata.
#[utoipa::path(get, path = endpoints::V2, tag = "KServe v2", responses((status = 200, body = ServerMetadata)))]
pub async fn server_metadata() -> HttpResponse {
    HttpResponse::Ok().json(ServerMetadata {
        name: "max-mnist",
        version: env!("CARGO_PKG_VERSION"),
        extensions: vec!["binary_tensor_data"],
    })
}

/// Liveness: the server answers.
#[utoipa::path(get, path = endpoints::V2_LIVE, tag = "KServe v2", responses((status = 200, body = Liveness)))]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(Liveness { live: true })
}

/// Readiness: the models are loaded (they are loaded before the server listens).
#[utoipa::path(get, path = endpoints::V2_READY, tag = "KServe v2", responses((status = 200, body = Readiness)))]
pub async fn ready() -> HttpResponse {
    HttpResponse::Ok().json(Readiness { ready: true })
}

fn model_metadata(info: &ModelInfo) -> V2ModelMetadata {
    let input = match info.input.kind {
        InputKind::Image => TensorMetadata {
            name: info.input.name.clone(),
            datatype: "BYTES",
            shape: vec![-1],
        },
        InputKind::Features => TensorMetadata {
            name: info.input.name.clone(),
            datatype: "FP32",
            shape: std::iter::once(-1)
                .chain(info.input.shape.iter().map(|&d| d as i64))
                .collect(),
        },
    };
    V2ModelMetadata {
        name: info.name.clone(),
        versions: vec![info.version.clone()],
        platform: "max-mnist",
        inputs: vec![input],
        outputs: vec![
            TensorMetadata {
                name: PREDICT.into(),
                datatype: "INT64",
                shape: vec![-1],
            },
            TensorMetadata {
                name: PROBABILITIES.into(),
                datatype: "FP32",
                shape: vec![-1, info.output.labels.len() as i64],
            },
        ],
    }
}

/// Model metadata: its input and outputs.
#[utoipa::path(
    get,
    path = endpoints::V2_MODEL,
    tag = "KServe v2",
    params(("model" = String, Path, description = "A served model's name")),
    responses(
        (status = 200, body = V2ModelMetadata),
        (status = 404, description = "A model or version not served", body = KServeErrorBody),
    )
)]
pub async fn metadata(model: KServeModel) -> HttpResponse {
    HttpResponse::Ok().json(model_metadata(model.info()))
}

/// Model readiness.
#[utoipa::path(
    get,
    path = endpoints::V2_MODEL_READY,
    tag = "KServe v2",
    params(("model" = String, Path, description = "A served model's name")),
    responses(
        (status = 200, body = ModelReadiness),
        (status = 404, description = "A model or version not served", body = KServeErrorBody),
    )
)]
pub async fn model_ready(model: KServeModel) -> HttpResponse {
    HttpResponse::Ok().json(ModelReadiness {
        name: model.info().name.clone(),
        ready: true,
    })
}

/// Classifies a batch in one forward pass: `predict` (INT64 [N]) and `probabilities` (FP32
/// [N, classes]), or the outputs asked for.
#[utoipa::path(
    post,
    path = endpoints::V2_INFER,
    tag = "KServe v2",
    params(("model" = String, Path, description = "A served model's name")),
    request_body = InferRequest,
    responses(
        (status = 200, body = Object, example = json!({"id": "1", "model_name": "mnist", "model_version": "1", "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [1], "data": [7]},
            {"name": "probabilities", "datatype": "FP32", "shape": [1, 10], "data": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.9999, 0.0, 0.0]}]})),
        (status = 400, description = "A bad input or output", body = KServeErrorBody),
        (status = 404, description = "A model or version not served", body = KServeErrorBody),
    )
)]
pub async fn infer(
    request: HttpRequest,
    model: KServeModel,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, KServeError> {
    let (infer, instances) = read_request(&request, model.info(), payload, &state).await?;
    let outputs = chosen_outputs(&infer, &OUTPUTS, false)?;
    let classifications = classify(&model, instances).await?;
    let batch = classifications.len();
    let classes: Vec<i64> = classifications.iter().map(|c| c.class as i64).collect();
    let probabilities: Vec<f32> = classifications
        .iter()
        .flat_map(|c| c.probabilities.iter().copied())
        .collect();
    let classes_count = model.info().output.labels.len();
    Ok(respond(
        model.info(),
        &infer,
        &outputs,
        |name| match name {
            PREDICT => ("INT64", vec![batch], OutputData::Int64(&classes)),
            _ => (
                "FP32",
                vec![batch, classes_count],
                OutputData::Fp32(&probabilities),
            ),
        },
    )?)
}

/// Integrated Gradients of each instance, as TorchServe's `kservev2` envelope answers them: one
/// output, `explain`, FP64 of shape `[N, …the model's input shape]` (`[N,1,H,W]` for a grayscale
/// image model, `[N,F]` for a model of F features). It takes every body `infer` takes; `parameters` may
/// name the `target` class and the `steps` (or Captum's `n_steps`), else the model's own handler's.
#[utoipa::path(
    post,
    path = endpoints::V2_EXPLAIN,
    tag = "KServe v2",
    params(("model" = String, Path, description = "A served model's name")),
    request_body(content = InferRequest, example = json!({"id": "1", "parameters": {"target": 0, "steps": 15},
        "inputs": [{"name": "input-0", "shape": [1], "datatype": "BYTES", "data": [crate::routes::SEVEN_PNG_BASE64]}]})),
    responses(
        (status = 200, body = Object, example = json!({"id": "1", "model_name": "mnist", "model_version": "1.0", "outputs": [
            {"name": "explain", "datatype": "FP64", "shape": [1, 1, 28, 28], "data": [0.0, -0.0012, 0.0031]}]})),
        (status = 400, description = "A bad input, output, target or steps", body = KServeErrorBody),
        (status = 404, description = "A model or version not served", body = KServeErrorBody),
    )
)]
pub async fn explain(
    request: HttpRequest,
    model: KServeModel,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, KServeError> {
    let info = model.info();
    let (infer, instances) = read_request(&request, info, payload, &state).await?;
    // TorchServe's kservev2 envelope answers the explanation whatever outputs the request names.
    let outputs = chosen_outputs(&infer, &[EXPLAIN], true)?;
    let parameter = |name: &str| infer.parameters.get(name);
    let target = json_number(parameter("target"), "parameters.target")?;
    let steps = json_number(
        parameter("steps").or_else(|| parameter("n_steps")),
        "parameters.steps",
    )?;
    let requests = instances.into_iter().map(|i| (i, target)).collect();
    let explained = inference::explain(&model, requests, explanation_settings(info, steps)).await?;
    let attributions: Vec<f32> = explained
        .iter()
        .flat_map(|e| e.explanation.attributions.iter().copied())
        .collect();
    let shape: Vec<usize> = std::iter::once(explained.len())
        .chain(info.input.shape.iter().copied())
        .collect();
    Ok(respond(info, &infer, &outputs, |_| {
        ("FP64", shape.clone(), OutputData::Fp64(&attributions))
    })?)
}

/// The request and its instances, from any body `infer` takes: JSON, or JSON followed by binary
/// tensors; one input, of BYTES (encoded images) or numbers.
async fn read_request(
    request: &HttpRequest,
    info: &ModelInfo,
    payload: web::Payload,
    state: &AppState,
) -> Result<(InferRequest, Vec<Instance>), ApiError> {
    let limits = &state.settings.limits;
    let body = read_body(payload, limits).await?;
    let (json_part, binary) = binary::split(request, &body)?;
    let infer: InferRequest = parse_json(json_part, limits)?;
    let input_info = &info.input;
    let [input] = infer.inputs.as_slice() else {
        return Err(ApiError::BadRequest(format!(
            "the request has {} inputs: {}",
            infer.inputs.len(),
            tensors::hint(input_info)
        )));
    };
    let instances = tensors::instances(input, binary, input_info).map_err(|err| {
        ApiError::BadRequest(format!(
            "input `{}`: {err}; {}",
            input.name,
            tensors::hint(input_info)
        ))
    })?;
    check_instance_count(instances.len(), limits)?;
    Ok((infer, instances))
}

/// An output to send, and whether it goes as binary data.
struct ChosenOutput {
    name: &'static str,
    binary: bool,
}

/// The outputs the request asks for among `known` (all of them when it names none); an unknown
/// one is a 400, or with `ignore_unknown` is passed over (all of them when none is left).
fn chosen_outputs(
    infer: &InferRequest,
    known: &[&'static str],
    ignore_unknown: bool,
) -> Result<Vec<ChosenOutput>, ApiError> {
    let all_binary = infer
        .parameters
        .get("binary_data_output")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let every = || {
        known
            .iter()
            .map(|&name| ChosenOutput {
                name,
                binary: all_binary,
            })
            .collect()
    };
    let Some(requested) = &infer.outputs else {
        return Ok(every());
    };
    let chosen: Vec<ChosenOutput> = requested
        .iter()
        .filter_map(|output| {
            let Some(name) = known.iter().copied().find(|known| *known == output.name) else {
                if ignore_unknown {
                    return None;
                }
                let names: Vec<String> = known.iter().map(|name| format!("`{name}`")).collect();
                return Some(Err(ApiError::BadRequest(format!(
                    "unknown output `{}`: the outputs are {}",
                    output.name,
                    names.join(" and ")
                ))));
            };
            let binary = output
                .parameters
                .get("binary_data")
                .and_then(Value::as_bool)
                .unwrap_or(all_binary);
            Some(Ok(ChosenOutput { name, binary }))
        })
        .collect::<Result<_, _>>()?;
    Ok(if chosen.is_empty() { every() } else { chosen })
}

/// An output's datatype, shape and values.
type Tensor<'a> = (&'static str, Vec<usize>, OutputData<'a>);

/// The response: each chosen output as `tensor` gives it by name, in JSON or as binary data.
fn respond<'a>(
    info: &ModelInfo,
    infer: &InferRequest,
    outputs: &[ChosenOutput],
    tensor: impl Fn(&'static str) -> Tensor<'a>,
) -> Result<HttpResponse, ApiError> {
    let mut binary = BytesMut::new();
    let outputs = outputs
        .iter()
        .map(|output| {
            let (datatype, shape, data) = tensor(output.name);
            let (data, parameters) = if output.binary {
                let binary_data_size = binary::append(&mut binary, data);
                (None, Some(BinaryParameters { binary_data_size }))
            } else {
                (Some(data), None)
            };
            OutputTensor {
                name: output.name,
                datatype,
                shape,
                data,
                parameters,
            }
        })
        .collect();
    let header = serde_json::to_string(&InferResponse {
        id: infer.id.as_deref(),
        model_name: &info.name,
        model_version: &info.version,
        outputs,
    })
    .map_err(|err| ApiError::Internal(format!("cannot write the response: {err}")))?;
    if binary.is_empty() {
        return Ok(HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")))
            .body(header));
    }
    let mut body = BytesMut::from(header.as_bytes());
    body.extend_from_slice(&binary);
    Ok(HttpResponse::Ok()
        .insert_header((
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        ))
        .insert_header((binary::HEADER_LENGTH, header.len().to_string()))
        .body(body.freeze()))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource(endpoints::V2).route(web::get().to(server_metadata)))
        .service(web::resource(endpoints::V2_LIVE).route(web::get().to(live)))
        .service(web::resource(endpoints::V2_READY).route(web::get().to(ready)));
    for (model_path, ready_path, infer_path, explain_path) in [
        (
            endpoints::V2_MODEL,
            endpoints::V2_MODEL_READY,
            endpoints::V2_INFER,
            endpoints::V2_EXPLAIN,
        ),
        (
            endpoints::V2_VERSIONED_MODEL,
            endpoints::V2_VERSIONED_MODEL_READY,
            endpoints::V2_VERSIONED_INFER,
            endpoints::V2_VERSIONED_EXPLAIN,
        ),
    ] {
        cfg.service(web::resource(model_path).route(web::get().to(metadata)))
            .service(web::resource(ready_path).route(web::get().to(model_ready)))
            .service(web::resource(infer_path).route(web::post().to(infer)))
            .service(web::resource(explain_path).route(web::post().to(explain)));
    }
}
