//! KServe's v1 protocol: `/v1/models`, `/v1/models/{model}`, `/v1/models/{model}:predict` and
//! `:explain`.

use actix_web::{web, HttpResponse};
use max_mnist_core::{InputKind, ModelInfo};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::endpoints;
use crate::errors::{ApiError, KServeError, KServeErrorBody};
use crate::inference::{
    check_instance_count, classify, explain, explanation_settings, json_number, FeatureMap, Nested,
};
use crate::instance::Instance;
use crate::resolved::Resolved;
use crate::state::AppState;
use crate::upload::{decode_base64, parse_json, read_body};
use crate::{tabular, RequestLimits};

type KServeModel = Resolved<KServeError>;

/// What an instance may be, for a model's input.
fn instance_hint(info: &ModelInfo) -> String {
    let shapes = info.input.describe_shapes();
    match info.input.kind {
        InputKind::Image => format!("each instance is {{\"data\": \"<base64 image>\"}}, a base64 string, or intensities of shape {shapes}"),
        InputKind::Features => format!(
            "each instance is an object of named fields or a row of numbers of shape {shapes}"
        ),
    }
}

#[derive(Serialize, ToSchema)]
pub struct ModelNames {
    #[schema(example = json!(["mnist"]))]
    models: Vec<String>,
}

/// The models served.
#[utoipa::path(get, path = endpoints::V1_MODELS, tag = "KServe v1", responses((status = 200, body = ModelNames)))]
pub async fn list_models(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(ModelNames {
        models: state
            .registry
            .all()
            .iter()
            .map(|served| served.info().name.clone())
            .collect(),
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
    path = endpoints::V1_MODEL,
    tag = "KServe v1",
    params(("model" = String, Path, description = "A served model's name")),
    responses(
        (status = 200, body = ModelStatus),
        (status = 404, description = "A model not served", body = KServeErrorBody),
    )
)]
pub async fn model_status(model: KServeModel) -> HttpResponse {
    HttpResponse::Ok().json(ModelStatus {
        name: model.info().name.clone(),
        ready: true,
    })
}

/// `{"instances": [...]}`.
#[derive(Deserialize, ToSchema)]
pub struct PredictRequest {
    #[schema(example = json!([{"data": super::SEVEN_PNG_BASE64}]))]
    instances: Vec<Value>,
}

/// `{"instances": [...]}`, and how to explain them when the instances do not say.
#[derive(Deserialize, ToSchema)]
pub struct ExplainRequest {
    #[serde(flatten)]
    request: PredictRequest,
    /// The class to explain for instances that name no `target` of their own (an object instance
    /// may): default the model's, as its TorchServe handler (a fixed class, or the predicted one).
    #[schema(value_type = Option<u32>, example = 0)]
    target: Option<Value>,
    /// Integrated Gradients' steps (Captum's `n_steps`, also read under that name), 1 to 512:
    /// default the model's handler's.
    #[serde(alias = "n_steps")]
    #[schema(value_type = Option<u32>, example = 15)]
    steps: Option<Value>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = V1PredictResponse)]
pub struct PredictResponse {
    /// The most probable class of each instance.
    #[schema(example = json!([7]))]
    predictions: Vec<usize>,
}

/// `:predict` classifies every instance in one forward pass.
#[utoipa::path(
    post,
    path = endpoints::V1_PREDICT,
    tag = "KServe v1",
    params(("model" = String, Path, description = "A served model's name")),
    request_body = PredictRequest,
    responses(
        (status = 200, body = PredictResponse),
        (status = 400, description = "A bad instance, or too many", body = KServeErrorBody),
        (status = 404, description = "A model not served", body = KServeErrorBody),
    )
)]
pub async fn predict(
    model: KServeModel,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, KServeError> {
    let limits = &state.settings.limits;
    let request: PredictRequest = parse_json(&read_body(payload, limits).await?, limits)?;
    let instances = read_instances(&request.instances, model.info(), limits)?;
    let predictions = classify(&model, instances)
        .await?
        .iter()
        .map(|classification| classification.class)
        .collect();
    Ok(HttpResponse::Ok().json(PredictResponse { predictions }))
}

/// `:explain`: Integrated Gradients per instance, as the model's TorchServe handler computes them
/// unless the request says otherwise: of the instance's `target`, else the request's, else the
/// model's default (as its handler: a fixed class, or the predicted one), with the request's `steps`
/// (or `n_steps`), else the handler's.
#[utoipa::path(
    post,
    path = endpoints::V1_EXPLAIN,
    tag = "KServe v1",
    params(("model" = String, Path, description = "A served model's name")),
    request_body = ExplainRequest,
    responses(
        (status = 200, body = ExplainResponse),
        (status = 400, description = "A bad instance, target or steps, or too many instances", body = KServeErrorBody),
        (status = 404, description = "A model not served", body = KServeErrorBody),
    )
)]
pub async fn explain_route(
    model: KServeModel,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, KServeError> {
    let limits = &state.settings.limits;
    let request: ExplainRequest = parse_json(&read_body(payload, limits).await?, limits)?;
    let info = model.info();
    let values = &request.request.instances;
    let instances = read_instances(values, info, limits)?;
    let default_target = json_number(request.target.as_ref(), "target")?;
    let settings = explanation_settings(info, json_number(request.steps.as_ref(), "steps")?);
    let mut requests = Vec::with_capacity(instances.len());
    for (index, (value, instance)) in values.iter().zip(instances).enumerate() {
        let target = json_number(value.get("target"), "target")
            .map_err(|err| ApiError::BadRequest(format!("instance {index}: {err}")))?;
        requests.push((instance, target.or(default_target)));
    }
    let explained = explain(&model, requests, settings).await?;
    Ok(HttpResponse::Ok().json(ExplainResponse {
        explanations: explained
            .iter()
            .map(|e| match info.input.kind {
                InputKind::Image => Attributions::Shaped(Nested {
                    values: &e.explanation.attributions,
                    shape: &info.input.shape,
                }),
                InputKind::Features => Attributions::Named(FeatureMap {
                    names: &info.input.feature_names,
                    values: &e.explanation.attributions,
                }),
            })
            .collect(),
    }))
}

/// The instances of a request, each read for the model's input; at most as many as one forward
/// pass may take.
fn read_instances(
    values: &[Value],
    info: &ModelInfo,
    limits: &RequestLimits,
) -> Result<Vec<Instance>, ApiError> {
    check_instance_count(values.len(), limits)?;
    values
        .iter()
        .enumerate()
        .map(|(index, value)| {
            instance(value, info).map_err(|err| {
                ApiError::BadRequest(format!("instance {index}: {err}; {}", instance_hint(info)))
            })
        })
        .collect()
}

/// One instance's attributions: in its shape (`[1][H][W]` for a grayscale image model), or by feature
/// name.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Attributions<'a> {
    Shaped(Nested<'a>),
    Named(FeatureMap<'a>),
}

#[derive(Serialize, ToSchema)]
#[schema(as = V1ExplainResponse)]
pub struct ExplainResponse<'a> {
    /// The attributions of each instance: in the model's input shape (`[1][H][W]` for a grayscale
    /// image model, as TorchServe's KServe envelope answers them), or by feature name (`{"feature_0": …}`)
    /// for tabular ones.
    #[schema(value_type = Vec<serde_json::Value>)]
    explanations: Vec<Attributions<'a>>,
}

/// One v1 instance: for an image model `{"data": base64}` (or `{"b64": …}`), a base64 string, or
/// a numeric tensor; for a tabular one, an object of named fields or a row of numbers.
fn instance(value: &Value, info: &ModelInfo) -> Result<Instance, String> {
    if info.input.kind == InputKind::Features {
        return tabular::instance(value);
    }
    match value {
        Value::String(text) => decode_file(text, info),
        Value::Object(fields) => match fields.get("data").or_else(|| fields.get("b64")) {
            Some(Value::String(text)) => decode_file(text, info),
            Some(tensor @ Value::Array(_)) => numeric(tensor, info),
            _ => Err("an object instance needs a `data` field".into()),
        },
        tensor @ Value::Array(_) => numeric(tensor, info),
        other => Err(format!("a {} is not an instance", json_kind(other))),
    }
}

fn decode_file(text: &str, info: &ModelInfo) -> Result<Instance, String> {
    if info.input.kind != InputKind::Image {
        return Err("this model takes numbers, not a file".into());
    }
    decode_base64(text)
        .map(Instance::File)
        .map_err(|err| err.to_string())
}

/// A numeric tensor of one of the model's instance shapes, flattened row-major.
fn numeric(tensor: &Value, info: &ModelInfo) -> Result<Instance, String> {
    let mut shape = Vec::new();
    let mut level = tensor;
    while let Value::Array(items) = level {
        shape.push(items.len());
        match items.first() {
            Some(first) => level = first,
            None => break,
        }
    }
    if !info.input.instance_shapes().contains(&shape) {
        return Err(format!("a tensor of shape {shape:?}"));
    }
    let mut values = Vec::with_capacity(info.input.len());
    flatten(tensor, shape.len(), &mut values)?;
    if values.len() != info.input.len() {
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
    cfg.service(web::resource(endpoints::V1_MODELS).route(web::get().to(list_models)))
        .service(web::resource(endpoints::V1_PREDICT).route(web::post().to(predict)))
        .service(web::resource(endpoints::V1_EXPLAIN).route(web::post().to(explain_route)))
        .service(web::resource(endpoints::V1_MODEL).route(web::get().to(model_status)));
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use max_mnist_core::architectures::net::Net;
    use max_mnist_core::model::{
        DefaultTarget, ExplanationInfo, InputInfo, OutputInfo, OutputKind,
    };
    use max_mnist_core::{Answer, Architecture};

    use super::*;

    fn image_model() -> ModelInfo {
        ModelInfo {
            name: "mnist".into(),
            version: "1".into(),
            network: Net.network(),
            input: InputInfo {
                kind: InputKind::Image,
                name: "input-0".into(),
                shape: vec![1, 28, 28],
                feature_names: Vec::new(),
            },
            output: OutputInfo {
                kind: OutputKind::LogProbabilities,
                labels: (0..10).map(|d: u8| d.to_string()).collect(),
                answer: Answer::Class,
            },
            explanation: ExplanationInfo {
                steps: 15,
                target: DefaultTarget::Predicted,
            },
            multiply_adds: 1,
        }
    }

    #[test]
    fn tensors_of_the_three_shapes_are_read_and_others_refused() {
        let info = image_model();
        let numeric = |tensor: &Value| numeric(tensor, &info);
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
        let info = image_model();
        for value in [
            json!("iVBORw0KGgo="),
            json!({"data": "iVBORw0KGgo="}),
            json!({"b64": "iVBORw0KGgo="}),
        ] {
            assert!(
                matches!(instance(&value, &info), Ok(Instance::File(_))),
                "{value}"
            );
        }
        for value in [json!(7), json!(null), json!({"target": 0})] {
            assert!(instance(&value, &info).is_err(), "{value}");
        }
    }
}
