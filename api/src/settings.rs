//! What the HTTP layer is told at start-up.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::errors::ApiError;

/// `GET /model/metadata`, as MAX serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelMetadata {
    #[schema(example = "max-pytorch-mnist")]
    pub id: String,
    #[schema(example = "MAX PyTorch MNIST")]
    pub name: String,
    pub description: String,
    #[serde(rename = "type")]
    #[schema(example = "Image Classification")]
    pub kind: String,
    pub source: String,
    #[schema(example = "Apache-2.0")]
    pub license: String,
}

/// The OpenAPI document's `info`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiInfo {
    pub title: String,
    pub description: String,
    pub version: String,
}

#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// The model's name and version in the TorchServe and KServe routes.
    pub model_name: String,
    pub model_version: String,
    pub metadata: ModelMetadata,
    pub api: ApiInfo,
    pub cors: CorsSettings,
    pub limits: RequestLimits,
}

impl ServiceSettings {
    /// Whether a TorchServe or KServe route names the model served (and its version, when it names one).
    pub fn check_model(&self, model: &str, version: Option<&str>) -> Result<(), ApiError> {
        if model != self.model_name {
            return Err(ApiError::NotFound(format!(
                "model `{model}` is not served here; this server serves `{}`",
                self.model_name
            )));
        }
        match version {
            Some(version) if version != self.model_version => Err(ApiError::NotFound(format!(
                "model `{model}` has no version `{version}`; this server serves version {}",
                self.model_version
            ))),
            _ => Ok(()),
        }
    }
}

/// Cross-origin requests, as MAX's `CORS_ENABLE`: off, from any origin, or from the listed ones.
#[derive(Debug, Clone, Default)]
pub struct CorsSettings {
    pub enabled: bool,
    /// Empty: any origin.
    pub origins: Vec<String>,
}

/// Bounds on what a client may send.
#[derive(Debug, Clone)]
pub struct RequestLimits {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Most parts in one multipart body.
    pub max_multipart_parts: usize,
    /// Most images decoded at once: each may take up to the decoder's memory limit.
    pub max_concurrent_decodes: usize,
    /// Most instances in one KServe request (one forward pass).
    pub max_instances: usize,
    /// Deepest nesting of arrays and objects in a JSON body.
    pub max_json_depth: usize,
    /// Longest a client may take to send a request's head, and then its body.
    pub request_timeout: Duration,
    /// How long an idle keep-alive connection stays open.
    pub keep_alive: Duration,
}
