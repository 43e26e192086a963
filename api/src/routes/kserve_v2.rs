//! KServe's v2 protocol (the Open Inference Protocol): server and model metadata, liveness and
//! readiness, and `infer` with BYTES (images) or numeric tensors, in JSON or with Triton's binary
//! tensor extension (what `tritonclient` sends by default).

use actix_web::http::header::{HeaderValue, CONTENT_TYPE};
use actix_web::web::{Bytes, BytesMut};
use actix_web::{web, HttpRequest, HttpResponse};
use max_mnist_core::{classifier::softmax, IMAGE_PIXELS, NUM_CLASSES};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use crate::errors::{ApiError, KServeError, KServeErrorBody};
use crate::inference::{check_instance_count, classify, Instance};
use crate::upload::{decode_base64, parse_json, read_body};
use crate::AppState;

/// The header that splits a binary-extension body into its JSON part and its tensor bytes.
const HEADER_LENGTH: &str = "Inference-Header-Content-Length";
const PREDICT: &str = "predict";
const PROBABILITIES: &str = "probabilities";
const INPUT_HINT: &str = "send one input: BYTES of base64 images (shape [N]), or FP32/FP64/UINT8/INT32/INT64 intensities of shape [N,28,28], [N,1,28,28] or [N,784]";

#[derive(Serialize, ToSchema)]
pub struct ServerMetadata {
    #[schema(example = "max-mnist")]
    name: &'static str,
    #[schema(example = "0.1.0")]
    version: &'static str,
    extensions: Vec<&'static str>,
}

/// Server metadata.
#[utoipa::path(get, path = "/v2", tag = "KServe v2", responses((status = 200, body = ServerMetadata)))]
pub async fn server_metadata() -> HttpResponse {
    HttpResponse::Ok().json(ServerMetadata {
        name: "max-mnist",
        version: env!("CARGO_PKG_VERSION"),
        extensions: vec!["binary_tensor_data"],
    })
}

/// Liveness: the server answers.
#[utoipa::path(get, path = "/v2/health/live", tag = "KServe v2", responses((status = 200, body = Object, example = json!({"live": true}))))]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"live": true}))
}

/// Readiness: the model is loaded (it is loaded before the server listens).
#[utoipa::path(get, path = "/v2/health/ready", tag = "KServe v2", responses((status = 200, body = Object, example = json!({"ready": true}))))]
pub async fn ready() -> HttpResponse {
    HttpResponse::Ok().json(json!({"ready": true}))
}

#[derive(Serialize, ToSchema)]
pub struct TensorMetadata {
    name: &'static str,
    datatype: &'static str,
    shape: Vec<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct ModelMetadataV2 {
    #[schema(example = "mnist")]
    name: String,
    versions: Vec<String>,
    #[schema(example = "candle")]
    platform: &'static str,
    inputs: Vec<TensorMetadata>,
    outputs: Vec<TensorMetadata>,
}

fn model_metadata(state: &AppState) -> ModelMetadataV2 {
    let settings = &state.settings;
    ModelMetadataV2 {
        name: settings.model_name.clone(),
        versions: vec![settings.model_version.clone()],
        platform: "candle",
        inputs: vec![TensorMetadata {
            name: "input-0",
            datatype: "BYTES",
            shape: vec![-1],
        }],
        outputs: vec![
            TensorMetadata {
                name: PREDICT,
                datatype: "INT64",
                shape: vec![-1],
            },
            TensorMetadata {
                name: PROBABILITIES,
                datatype: "FP32",
                shape: vec![-1, NUM_CLASSES as i64],
            },
        ],
    }
}

/// Which model (and version) a `/v2/models/{model}[/versions/{version}]/…` path names.
#[derive(Deserialize)]
pub struct ModelPath {
    model: String,
    version: Option<String>,
}

/// Model metadata: its input and outputs.
#[utoipa::path(
    get,
    path = "/v2/models/{model}",
    tag = "KServe v2",
    params(("model" = String, Path, description = "The model's name, `mnist` by default")),
    responses(
        (status = 200, body = ModelMetadataV2),
        (status = 404, description = "Another model or version", body = KServeErrorBody),
    )
)]
pub async fn metadata(
    path: web::Path<ModelPath>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, KServeError> {
    state
        .settings
        .check_model(&path.model, path.version.as_deref())?;
    Ok(HttpResponse::Ok().json(model_metadata(&state)))
}

/// Model readiness.
#[utoipa::path(
    get,
    path = "/v2/models/{model}/ready",
    tag = "KServe v2",
    params(("model" = String, Path, description = "The model's name")),
    responses(
        (status = 200, body = Object, example = json!({"name": "mnist", "ready": true})),
        (status = 404, description = "Another model or version", body = KServeErrorBody),
    )
)]
pub async fn model_ready(
    path: web::Path<ModelPath>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, KServeError> {
    state
        .settings
        .check_model(&path.model, path.version.as_deref())?;
    Ok(HttpResponse::Ok().json(json!({"name": state.settings.model_name, "ready": true})))
}

#[derive(Deserialize, ToSchema)]
pub struct InferInput {
    #[schema(example = "input-0")]
    name: String,
    #[schema(example = json!([1]))]
    shape: Vec<i64>,
    #[schema(example = "BYTES")]
    datatype: String,
    #[serde(default)]
    parameters: Map<String, Value>,
    /// Flat or nested; absent when the tensor travels as binary data.
    #[schema(value_type = Object, example = json!(["iVBORw0KGgo…"]))]
    data: Option<Value>,
}

#[derive(Deserialize, ToSchema)]
pub struct RequestedOutput {
    #[schema(example = "predict")]
    name: String,
    #[serde(default)]
    parameters: Map<String, Value>,
}

#[derive(Deserialize, ToSchema)]
pub struct InferRequest {
    id: Option<String>,
    #[serde(default)]
    parameters: Map<String, Value>,
    inputs: Vec<InferInput>,
    outputs: Option<Vec<RequestedOutput>>,
}

/// Classifies a batch: `predict` (INT64 [N]) and `probabilities` (FP32 [N,10]), or the outputs asked for.
#[utoipa::path(
    post,
    path = "/v2/models/{model}/infer",
    tag = "KServe v2",
    params(("model" = String, Path, description = "The model's name, `mnist` by default")),
    request_body = InferRequest,
    responses(
        (status = 200, body = Object, example = json!({"id": "1", "model_name": "mnist", "model_version": "1", "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [1], "data": [7]},
            {"name": "probabilities", "datatype": "FP32", "shape": [1, 10], "data": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.9999, 0.0, 0.0]}]})),
        (status = 400, description = "A bad input or output", body = KServeErrorBody),
        (status = 404, description = "Another model or version", body = KServeErrorBody),
    )
)]
pub async fn infer(
    request: HttpRequest,
    path: web::Path<ModelPath>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, KServeError> {
    state
        .settings
        .check_model(&path.model, path.version.as_deref())?;
    let limits = &state.settings.limits;
    let body = read_body(payload, limits).await?;
    let (json_part, binary) = split_binary(&request, &body)?;
    let infer: InferRequest = parse_json(json_part, limits)?;
    let [input] = infer.inputs.as_slice() else {
        return Err(ApiError::BadRequest(format!(
            "the request has {} inputs: {INPUT_HINT}",
            infer.inputs.len()
        ))
        .into());
    };
    let instances = read_input(input, binary).map_err(|err| {
        ApiError::BadRequest(format!("input `{}`: {err}; {INPUT_HINT}", input.name))
    })?;
    check_instance_count(instances.len(), limits)?;
    let outputs = chosen_outputs(&infer)?;
    let logits = classify(&state, instances).await?;
    Ok(respond(&state, &infer, &outputs, &logits)?)
}

/// The JSON part and the binary tensor bytes of a body (all JSON without the extension's header).
fn split_binary<'a>(
    request: &HttpRequest,
    body: &'a Bytes,
) -> Result<(&'a [u8], &'a [u8]), ApiError> {
    let Some(length) = request.headers().get(HEADER_LENGTH) else {
        return Ok((body, &[]));
    };
    let length: usize = length
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .ok_or_else(|| ApiError::BadRequest(format!("{HEADER_LENGTH} must be a byte count")))?;
    if length > body.len() {
        return Err(ApiError::BadRequest(format!(
            "{HEADER_LENGTH} is {length}, but the body has {} bytes",
            body.len()
        )));
    }
    Ok(body.split_at(length))
}

/// The instances an input holds, from its JSON `data` or from the binary bytes.
fn read_input(input: &InferInput, binary: &[u8]) -> Result<Vec<Instance>, String> {
    let binary_size = input
        .parameters
        .get("binary_data_size")
        .and_then(Value::as_u64)
        .map(|size| usize::try_from(size).unwrap_or(usize::MAX));
    let raw = match binary_size {
        Some(size) => Some(binary.get(..size).ok_or_else(|| {
            format!(
                "binary_data_size is {size}, but {} bytes follow the JSON",
                binary.len()
            )
        })?),
        None => None,
    };
    let datatype = input.datatype.to_ascii_uppercase();
    if datatype == "BYTES" {
        let images = match (raw, &input.data) {
            (Some(raw), _) => binary_elements(raw)?,
            (None, Some(data)) => json_strings(data)?,
            (None, None) => return Err("no `data` and no binary data".into()),
        };
        check_shape(&input.shape, &[images.len()])?;
        return Ok(images);
    }
    let values = match (raw, &input.data) {
        (Some(raw), _) => binary_numbers(raw, &datatype)?,
        (None, Some(data)) => {
            if !matches!(
                datatype.as_str(),
                "FP32" | "FP64" | "UINT8" | "INT32" | "INT64"
            ) {
                return Err(format!("datatype {datatype} is not supported"));
            }
            let mut values = Vec::new();
            json_numbers(data, &mut values)?;
            values
        }
        (None, None) => return Err("no `data` and no binary data".into()),
    };
    let count = values.len() / IMAGE_PIXELS;
    if !values.len().is_multiple_of(IMAGE_PIXELS) {
        return Err(format!(
            "{} values are not a whole number of 28×28 images",
            values.len()
        ));
    }
    let shape_ok = [
        [count, 28, 28].as_slice(),
        &[count, 1, 28, 28],
        &[count, IMAGE_PIXELS],
    ]
    .iter()
    .any(|shape| check_shape(&input.shape, shape).is_ok());
    if !shape_ok {
        return Err(format!(
            "shape {:?} with {} values",
            input.shape,
            values.len()
        ));
    }
    Ok(values
        .chunks_exact(IMAGE_PIXELS)
        .map(|chunk| Instance::Tensor(chunk.to_vec()))
        .collect())
}

/// `declared` matches `actual`, with −1 standing for any size.
fn check_shape(declared: &[i64], actual: &[usize]) -> Result<(), String> {
    let matches = declared.len() == actual.len()
        && declared
            .iter()
            .zip(actual)
            .all(|(&d, &a)| d == -1 || usize::try_from(d).is_ok_and(|d| d == a));
    if matches {
        Ok(())
    } else {
        Err(format!(
            "shape {declared:?} does not match the data's {actual:?}"
        ))
    }
}

/// BYTES elements as JSON strings: base64 images.
fn json_strings(data: &Value) -> Result<Vec<Instance>, String> {
    let mut strings = Vec::new();
    collect_strings(data, &mut strings)?;
    strings
        .into_iter()
        .enumerate()
        .map(|(index, text)| {
            decode_base64(text)
                .map(Instance::Image)
                .map_err(|err| format!("element {index}: {err}"))
        })
        .collect()
}

fn collect_strings<'a>(data: &'a Value, out: &mut Vec<&'a str>) -> Result<(), String> {
    match data {
        Value::String(text) => {
            out.push(text);
            Ok(())
        }
        Value::Array(items) => items.iter().try_for_each(|item| collect_strings(item, out)),
        _ => Err("BYTES data must be strings (base64 images)".into()),
    }
}

fn json_numbers(data: &Value, out: &mut Vec<f64>) -> Result<(), String> {
    match data {
        Value::Number(number) => {
            out.push(number.as_f64().unwrap_or(f64::NAN));
            Ok(())
        }
        Value::Array(items) => items.iter().try_for_each(|item| json_numbers(item, out)),
        _ => Err("numeric data must be numbers".into()),
    }
}

/// BYTES in the binary extension: each element a 4-byte little-endian length, then its bytes (an
/// image file, or its base64 text).
fn binary_elements(mut raw: &[u8]) -> Result<Vec<Instance>, String> {
    let mut images = Vec::new();
    while !raw.is_empty() {
        let (length, rest) = raw
            .split_first_chunk::<4>()
            .ok_or("a BYTES element's length is cut short")?;
        let length = u32::from_le_bytes(*length) as usize;
        let element = rest
            .get(..length)
            .ok_or_else(|| format!("a BYTES element of {length} bytes is cut short"))?;
        let image = std::str::from_utf8(element)
            .ok()
            .and_then(|text| decode_base64(text).ok())
            .unwrap_or_else(|| Bytes::copy_from_slice(element));
        images.push(Instance::Image(image));
        raw = rest.get(length..).unwrap_or_default();
    }
    Ok(images)
}

/// Numbers in the binary extension: little-endian, of the input's datatype.
fn binary_numbers(raw: &[u8], datatype: &str) -> Result<Vec<f64>, String> {
    fn read<const N: usize>(raw: &[u8], convert: fn([u8; N]) -> f64) -> Result<Vec<f64>, String> {
        if !raw.len().is_multiple_of(N) {
            return Err(format!("{} bytes are not whole {N}-byte values", raw.len()));
        }
        Ok(raw
            .chunks_exact(N)
            .map(|chunk| chunk.try_into().map_or(f64::NAN, convert))
            .collect())
    }
    match datatype {
        "FP32" => read::<4>(raw, |b| f64::from(f32::from_le_bytes(b))),
        "FP64" => read::<8>(raw, f64::from_le_bytes),
        "UINT8" => read::<1>(raw, |b| f64::from(b[0])),
        "INT32" => read::<4>(raw, |b| f64::from(i32::from_le_bytes(b))),
        "INT64" => read::<8>(raw, |b| i64::from_le_bytes(b) as f64),
        other => Err(format!("datatype {other} is not supported")),
    }
}

/// An output to send, and whether it goes as binary data.
struct ChosenOutput {
    name: &'static str,
    binary: bool,
}

fn chosen_outputs(infer: &InferRequest) -> Result<Vec<ChosenOutput>, ApiError> {
    let all_binary = infer
        .parameters
        .get("binary_data_output")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let Some(requested) = &infer.outputs else {
        return Ok([PREDICT, PROBABILITIES]
            .into_iter()
            .map(|name| ChosenOutput {
                name,
                binary: all_binary,
            })
            .collect());
    };
    requested
        .iter()
        .map(|output| {
            let name = [PREDICT, PROBABILITIES]
                .into_iter()
                .find(|known| *known == output.name)
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "unknown output `{}`: the outputs are `{PREDICT}` and `{PROBABILITIES}`",
                        output.name
                    ))
                })?;
            let binary = output
                .parameters
                .get("binary_data")
                .and_then(Value::as_bool)
                .unwrap_or(all_binary);
            Ok(ChosenOutput { name, binary })
        })
        .collect()
}

#[derive(Serialize)]
struct InferResponse<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    model_name: &'a str,
    model_version: &'a str,
    outputs: Vec<OutputTensor<'a>>,
}

#[derive(Serialize)]
struct OutputTensor<'a> {
    name: &'static str,
    datatype: &'static str,
    shape: Vec<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<OutputData<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<BinaryParameters>,
}

/// Typed, so that FP32 values are written as the shortest `f32` text, not widened to `f64`.
#[derive(Serialize)]
#[serde(untagged)]
enum OutputData<'a> {
    Int64(&'a [i64]),
    Fp32(&'a [f32]),
}

#[derive(Serialize)]
struct BinaryParameters {
    binary_data_size: usize,
}

fn respond(
    state: &AppState,
    infer: &InferRequest,
    outputs: &[ChosenOutput],
    logits: &[max_mnist_core::Logits],
) -> Result<HttpResponse, ApiError> {
    let batch = logits.len();
    let digits: Vec<i64> = logits
        .iter()
        .map(|logits| {
            state
                .model
                .post_process(logits, 1)
                .first()
                .map_or(0, |top| i64::from(top.prediction))
        })
        .collect();
    let probabilities: Vec<f32> = logits.iter().flat_map(softmax).collect();
    let mut binary = BytesMut::new();
    let outputs = outputs
        .iter()
        .map(|output| {
            let (datatype, shape, data) = match output.name {
                PREDICT => ("INT64", vec![batch], OutputData::Int64(&digits)),
                _ => (
                    "FP32",
                    vec![batch, NUM_CLASSES],
                    OutputData::Fp32(&probabilities),
                ),
            };
            let (data, parameters) = if output.binary {
                let before = binary.len();
                match data {
                    OutputData::Int64(values) => values
                        .iter()
                        .for_each(|v| binary.extend_from_slice(&v.to_le_bytes())),
                    OutputData::Fp32(values) => values
                        .iter()
                        .for_each(|v| binary.extend_from_slice(&v.to_le_bytes())),
                }
                let binary_data_size = binary.len() - before;
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
        model_name: &state.settings.model_name,
        model_version: &state.settings.model_version,
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
        .insert_header((HEADER_LENGTH, header.len().to_string()))
        .body(body.freeze()))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v2").route(web::get().to(server_metadata)))
        .service(web::resource("/v2/health/live").route(web::get().to(live)))
        .service(web::resource("/v2/health/ready").route(web::get().to(ready)));
    for prefix in [
        "/v2/models/{model}",
        "/v2/models/{model}/versions/{version}",
    ] {
        cfg.service(web::resource(prefix).route(web::get().to(metadata)))
            .service(web::resource(format!("{prefix}/ready")).route(web::get().to(model_ready)))
            .service(web::resource(format!("{prefix}/infer")).route(web::post().to(infer)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_match_with_minus_one_as_a_wildcard() {
        assert!(check_shape(&[-1], &[3]).is_ok());
        assert!(check_shape(&[2, 784], &[2, 784]).is_ok());
        assert!(check_shape(&[-1, 28, 28], &[5, 28, 28]).is_ok());
        assert!(check_shape(&[2, 784], &[3, 784]).is_err());
        assert!(check_shape(&[784], &[1, 784]).is_err());
        assert!(check_shape(&[-2], &[1]).is_err());
    }

    #[test]
    fn binary_elements_and_numbers_are_read_and_cut_ones_refused() {
        let mut raw = Vec::new();
        for element in [&b"\x89PNG"[..], b"iVBORw0KGgo="] {
            raw.extend_from_slice(&(element.len() as u32).to_le_bytes());
            raw.extend_from_slice(element);
        }
        let images = binary_elements(&raw).expect("two elements");
        assert!(
            matches!(&images[..], [Instance::Image(a), Instance::Image(b)]
            if a.as_ref() == b"\x89PNG" && b.as_ref() == b"\x89PNG\r\n\x1a\n")
        );
        assert!(binary_elements(&raw[..raw.len() - 1]).is_err());
        assert!(binary_elements(&[1, 0]).is_err());

        let floats: Vec<u8> = [0.5f32, 1.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(binary_numbers(&floats, "FP32"), Ok(vec![0.5, 1.0]));
        assert_eq!(binary_numbers(&[0, 255], "UINT8"), Ok(vec![0.0, 255.0]));
        assert!(binary_numbers(&floats[..7], "FP32").is_err());
        assert!(binary_numbers(&floats, "BF16").is_err());
    }
}
