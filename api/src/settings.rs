//! What the HTTP layer is told at start-up.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use max_mnist_core::{LoadLimits, ModelInfo};

use crate::auth::AuthSettings;

/// `GET /model/metadata`, as MAX serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaxModelMetadata {
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
    /// `GET /model/metadata` when the first model is MAX's MyConvNet (others describe themselves).
    pub metadata: MaxModelMetadata,
    /// The only directory the management API registers models from; `None`: it registers none.
    pub model_store: Option<std::path::PathBuf>,
    /// Bounds on the files registered models are loaded from.
    pub load_limits: LoadLimits,
    pub auth: AuthSettings,
    /// Where TorchServe's `{"input_file_path": …}` may read CSV files; `None`: nowhere.
    pub input_dir: Option<std::path::PathBuf>,
    pub api: ApiInfo,
    /// The network [`Self::metadata`] describes: a first model of another network describes
    /// itself.
    pub metadata_network: String,
    pub cors: CorsSettings,
    pub limits: RequestLimits,
    /// Whether the management API registers and unregisters models (TorchServe's
    /// `enable_model_api`); describing and scaling are always allowed.
    pub model_api: bool,
}

impl ServiceSettings {
    /// `GET /model/metadata` for `first`, the model the MAX routes answer with: the configured
    /// metadata for MAX's MyConvNet, else what the network says of itself.
    pub fn metadata_of(&self, first: &ModelInfo) -> MaxModelMetadata {
        let network = &first.network;
        if network.name == self.metadata_network {
            return self.metadata.clone();
        }
        MaxModelMetadata {
            id: first.name.clone(),
            name: format!("{} ({})", network.origin, network.name),
            description: network.description.clone(),
            kind: if first.input.kind == max_mnist_core::InputKind::Image {
                self.metadata.kind.clone()
            } else {
                "Tabular Classification".to_owned()
            },
            source: network.source.clone(),
            license: "Apache-2.0".to_owned(),
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
    /// Runners of each model's expensive work (big images, explanations, big networks):
    /// TorchServe's workers per model.
    pub runners_per_model: usize,
    /// Memory all image decodes on runners may take at once, for the whole process: a runner
    /// waits for its share, so more runners never mean more worst-case memory.
    pub decoder_budget_bytes: u64,
    /// Most requests waiting for one model's runners (TorchServe's `job_queue_size`); a 503 beyond.
    pub job_queue_size: usize,
    /// HTTP worker threads per listener; `None`: one per core the process may use.
    pub http_workers: Option<usize>,
    /// Most instances in one KServe request (one forward pass).
    pub max_instances: usize,
    /// Deepest nesting of arrays and objects in a JSON body.
    pub max_json_depth: usize,
    /// Longest a client may take to send a request's head, and then its body.
    pub request_timeout: Duration,
    /// How long an idle keep-alive connection stays open.
    pub keep_alive: Duration,
}

#[cfg(test)]
impl RequestLimits {
    /// Small bounds, for unit tests of what they refuse.
    pub fn small() -> Self {
        Self {
            max_body_bytes: 1024,
            max_multipart_parts: 4,
            runners_per_model: 1,
            decoder_budget_bytes: 1 << 20,
            job_queue_size: 1,
            http_workers: None,
            max_json_depth: 4,
            max_instances: 4,
            request_timeout: Duration::from_secs(1),
            keep_alive: Duration::from_secs(1),
        }
    }
}
