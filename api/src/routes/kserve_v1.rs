//! KServe's v1 protocol: `/v1/models`, `/v1/models/{model}`, `/v1/models/{model}:predict`.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::errors::{ApiError, KServeError, KServeErrorBody};
use crate::inference::{check_instance_count, classify, explain, rows, Instance};
use crate::upload::{decode_base64, parse_json, read_body};
use crate::AppState;

/// The steps TorchServe's MNIST handler gives Captum, so that a KServe deployment of it answers alike.
const EXPLAIN_STEPS: usize = 15;
const INSTANCE_HINT: &str = "each instance is {\"data\": \"<base64 image>\"}, a base64 string, or intensities of shape [28,28], [1,28,28] or [784]";

#[derive(Serialize, ToSchema)]
pub struct ModelNames {
    #[schema(example = json!(["mnist"]))]
    models: Vec<String>,
}

/// The models served (one).
#[utoipa::path(get, path = "/v1/models", tag = "KServe v1", responses((status = 200, body = ModelNames)))]
pub async fn list_models(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(ModelNames {
        models: vec![state.settings.model_name.clone()],
    })
}

#[derive(Serialize, ToSchema)]
pub struct ModelStatus {
    #[schema(example = "mnist")]
    name: String,
    ready: bool,
}

/// The model's readiness.
#[utoipa::path(
    get,
    path = "/v1/models/{model}",
    tag = "KServe v1",
    params(("model" = String, Path, description = "The model's name, `mnist` by default")),
    responses(
        (status = 200, body = ModelStatus),
        (status = 404, description = "Another model", body = KServeErrorBody),
    )
)]
pub async fn model_status(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, KServeError> {
    state.settings.check_model(&path, None)?;
    Ok(HttpResponse::Ok().json(ModelStatus {
        name: state.settings.model_name.clone(),
        ready: true,
    }))
}

/// `{"instances": [...]}`.
#[derive(Deserialize, ToSchema)]
pub struct PredictRequest {
    #[schema(example = json!([{"data": "iVBORw0KGgo…"}]))]
    instances: Vec<Value>,
}

#[derive(Serialize, ToSchema)]
pub struct PredictResponse {
    #[schema(example = json!([7]))]
    predictions: Vec<u8>,
}

/// `:predict` classifies every instance in one forward pass.
#[utoipa::path(
    post,
    path = "/v1/models/{model}:predict",
    tag = "KServe v1",
    params(("model" = String, Path, description = "The model's name, `mnist` by default")),
    request_body = PredictRequest,
    responses(
        (status = 200, body = PredictResponse),
        (status = 400, description = "A bad instance, or too many", body = KServeErrorBody),
        (status = 404, description = "Another model", body = KServeErrorBody),
    )
)]
pub async fn predict(
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, KServeError> {
    model_action(&path, payload, &state, Verb::Predict).await
}

/// `:explain`: Integrated Gradients per instance (15 steps, as TorchServe's MNIST handler), of the
/// instance's `target` when an object instance names one, else of its predicted digit.
#[utoipa::path(
    post,
    path = "/v1/models/{model}:explain",
    tag = "KServe v1",
    params(("model" = String, Path, description = "The model's name, `mnist` by default")),
    request_body = PredictRequest,
    responses(
        (status = 200, body = ExplainResponse),
        (status = 400, description = "A bad instance or target, or too many instances", body = KServeErrorBody),
        (status = 404, description = "Another model", body = KServeErrorBody),
    )
)]
pub async fn explain_route(
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, KServeError> {
    model_action(&path, payload, &state, Verb::Explain).await
}

#[derive(PartialEq)]
enum Verb {
    Predict,
    Explain,
}

async fn model_action(
    model: &str,
    payload: web::Payload,
    state: &AppState,
    verb: Verb,
) -> Result<HttpResponse, KServeError> {
    state.settings.check_model(model, None)?;
    let limits = &state.settings.limits;
    let body = read_body(payload, limits).await?;
    let request: PredictRequest = parse_json(&body, limits)?;
    check_instance_count(request.instances.len(), limits)?;
    let instances = request
        .instances
        .iter()
        .enumerate()
        .map(|(index, value)| {
            instance(value).map_err(|err| {
                ApiError::BadRequest(format!("instance {index}: {err}; {INSTANCE_HINT}"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if verb == Verb::Explain {
        return explain_instances(state, &request.instances, instances).await;
    }
    let predictions = classify(state, instances)
        .await?
        .iter()
        .map(|logits| {
            state
                .model
                .post_process(logits, 1)
                .first()
                .map_or(0, |top| top.prediction)
        })
        .collect();
    Ok(HttpResponse::Ok().json(PredictResponse { predictions }))
}

#[derive(Serialize, ToSchema)]
pub struct ExplainResponse<'a> {
    /// One 28×28 array of attributions per instance.
    #[schema(value_type = Vec<Vec<Vec<f32>>>)]
    explanations: Vec<Vec<&'a [f32]>>,
}

async fn explain_instances(
    state: &AppState,
    values: &[Value],
    instances: Vec<Instance>,
) -> Result<HttpResponse, KServeError> {
    let mut explained = Vec::with_capacity(instances.len());
    for (index, (value, instance)) in values.iter().zip(instances).enumerate() {
        let target = match value.get("target") {
            None | Some(Value::Null) => None,
            Some(target) => Some(
                target
                    .as_u64()
                    .and_then(|t| usize::try_from(t).ok())
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "instance {index}: target must be a digit from 0 to 9"
                        ))
                    })?,
            ),
        };
        explained.push(explain(state, instance, target, EXPLAIN_STEPS).await?);
    }
    Ok(HttpResponse::Ok().json(ExplainResponse {
        explanations: explained
            .iter()
            .map(|e| rows(&e.explanation.attributions))
            .collect(),
    }))
}

/// One v1 instance: `{"data": base64}` (or `{"b64": …}`), a base64 string, or a numeric tensor.
fn instance(value: &Value) -> Result<Instance, String> {
    match value {
        Value::String(text) => decode_image(text),
        Value::Object(fields) => match fields.get("data").or_else(|| fields.get("b64")) {
            Some(Value::String(text)) => decode_image(text),
            Some(tensor @ Value::Array(_)) => numeric(tensor),
            _ => Err("an object instance needs a `data` field".into()),
        },
        tensor @ Value::Array(_) => numeric(tensor),
        other => Err(format!("a {} is not an instance", json_kind(other))),
    }
}

fn decode_image(text: &str) -> Result<Instance, String> {
    decode_base64(text)
        .map(Instance::Image)
        .map_err(|err| err.to_string())
}

/// A numeric tensor of shape [28,28], [1,28,28] or [784], flattened row-major.
fn numeric(tensor: &Value) -> Result<Instance, String> {
    let mut shape = Vec::new();
    let mut level = tensor;
    while let Value::Array(items) = level {
        shape.push(items.len());
        match items.first() {
            Some(first) => level = first,
            None => break,
        }
    }
    if !matches!(shape.as_slice(), [28, 28] | [1, 28, 28] | [784]) {
        return Err(format!("a tensor of shape {shape:?}"));
    }
    let mut values = Vec::with_capacity(784);
    flatten(tensor, shape.len(), &mut values)?;
    if values.len() != 784 {
        return Err(format!("a ragged tensor of {} values", values.len()));
    }
    Ok(Instance::Tensor(values))
}

fn flatten(value: &Value, depth: usize, out: &mut Vec<f64>) -> Result<(), String> {
    match (value, depth) {
        (Value::Number(number), 0) => {
            out.push(number.as_f64().unwrap_or(f64::NAN));
            Ok(())
        }
        (Value::Array(items), depth) if depth > 0 => items
            .iter()
            .try_for_each(|item| flatten(item, depth - 1, out)),
        (other, _) => Err(format!(
            "a ragged tensor (a {} where the shape needs {})",
            json_kind(other),
            if depth == 0 { "a number" } else { "an array" }
        )),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/models").route(web::get().to(list_models)))
        .service(web::resource("/v1/models/{model}:predict").route(web::post().to(predict)))
        .service(web::resource("/v1/models/{model}:explain").route(web::post().to(explain_route)))
        .service(web::resource("/v1/models/{model}").route(web::get().to(model_status)));
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tensors_of_the_three_shapes_are_read_and_others_refused() {
        let row: Vec<f64> = (0..28).map(|i| f64::from(i) / 28.0).collect();
        let square = json!(vec![row.clone(); 28]);
        for tensor in [square.clone(), json!([square]), json!(vec![0.5; 784])] {
            match numeric(&tensor) {
                Ok(Instance::Tensor(values)) => assert_eq!(values.len(), 784),
                other => panic!("{other:?}"),
            }
        }
        assert!(numeric(&json!(vec![vec![0.0; 392]; 2])).is_err());
        let mut ragged = vec![row.clone(); 28];
        ragged[5].pop();
        assert!(numeric(&json!(ragged)).is_err());
        assert!(numeric(&json!([vec![vec!["x"; 28]; 28]])).is_err());
    }

    #[test]
    fn instances_come_in_every_documented_spelling() {
        for value in [
            json!("iVBORw0KGgo="),
            json!({"data": "iVBORw0KGgo="}),
            json!({"b64": "iVBORw0KGgo="}),
        ] {
            assert!(
                matches!(instance(&value), Ok(Instance::Image(_))),
                "{value}"
            );
        }
        for value in [json!(7), json!(null), json!({"target": 0})] {
            assert!(instance(&value).is_err(), "{value}");
        }
    }
}
