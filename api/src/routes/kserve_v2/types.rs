//! The Open Inference Protocol's JSON, as it travels.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct ServerMetadata {
    #[schema(example = "max-mnist")]
    pub name: &'static str,
    #[schema(example = "0.1.0")]
    pub version: &'static str,
    pub extensions: Vec<&'static str>,
}

#[derive(Serialize, ToSchema)]
pub struct TensorMetadata {
    #[schema(example = "input-0")]
    pub name: String,
    #[schema(example = "BYTES")]
    pub datatype: &'static str,
    #[schema(example = json!([-1]))]
    pub shape: Vec<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct V2ModelMetadata {
    #[schema(example = "mnist")]
    pub name: String,
    #[schema(example = json!(["1"]))]
    pub versions: Vec<String>,
    #[schema(example = "max-mnist")]
    pub platform: &'static str,
    pub inputs: Vec<TensorMetadata>,
    pub outputs: Vec<TensorMetadata>,
}

#[derive(Serialize, ToSchema)]
pub struct Liveness {
    pub live: bool,
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    pub ready: bool,
}

#[derive(Serialize, ToSchema)]
pub struct ModelReadiness {
    #[schema(example = "mnist")]
    pub name: String,
    pub ready: bool,
}

#[derive(Deserialize, ToSchema)]
pub struct InferInput {
    #[schema(example = "input-0")]
    pub name: String,
    #[schema(example = json!([1]))]
    pub shape: Vec<i64>,
    #[schema(example = "BYTES")]
    pub datatype: String,
    #[serde(default)]
    pub parameters: Map<String, Value>,
    /// Flat or nested; absent when the tensor travels as binary data.
    #[schema(value_type = Option<Vec<Value>>, example = json!([crate::routes::SEVEN_PNG_BASE64]))]
    pub data: Option<Value>,
}

#[derive(Deserialize, ToSchema)]
pub struct RequestedOutput {
    #[schema(example = "predict")]
    pub name: String,
    #[serde(default)]
    pub parameters: Map<String, Value>,
}

#[derive(Deserialize, ToSchema)]
pub struct InferRequest {
    pub id: Option<String>,
    #[serde(default)]
    pub parameters: Map<String, Value>,
    pub inputs: Vec<InferInput>,
    pub outputs: Option<Vec<RequestedOutput>>,
}

#[derive(Serialize)]
pub struct InferResponse<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    pub model_name: &'a str,
    pub model_version: &'a str,
    pub outputs: Vec<OutputTensor<'a>>,
}

#[derive(Serialize)]
pub struct OutputTensor<'a> {
    pub name: &'static str,
    pub datatype: &'static str,
    pub shape: Vec<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<OutputData<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<BinaryParameters>,
}

/// Typed, so that FP32 values are written as the shortest `f32` text, not widened to `f64`.
#[derive(Serialize, Clone, Copy)]
#[serde(untagged)]
pub enum OutputData<'a> {
    Int64(&'a [i64]),
    Fp32(&'a [f32]),
    /// FP64 values computed in `f32`: in JSON the shortest `f32` text (read as FP64, the same
    /// number); as binary data, widened to 8 bytes.
    Fp64(&'a [f32]),
}

#[derive(Serialize)]
pub struct BinaryParameters {
    pub binary_data_size: usize,
}
