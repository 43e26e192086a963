//! Every route's path, defined once: the routes register them, the OpenAPI document names them,
//! and the token check, the error shapes and the metrics classify requests by them, so that a new
//! route is added here and nowhere else is left behind.

// The MAX routes, of the first model.
pub const MAX_METADATA: &str = "/model/metadata";
pub const MAX_LABELS: &str = "/model/labels";
pub const MAX_PREDICT: &str = "/model/predict";
pub const MAX_EXPLAIN: &str = "/model/explain";
const MAX_PREFIX: &str = "/model/";

// Operations: health, metrics, documentation, the demo page.
pub const INDEX: &str = "/";
pub const PING: &str = "/ping";
pub const METRICS: &str = "/metrics";
pub const SWAGGER_JSON: &str = "/swagger.json";
pub const OPENAPI_JSON: &str = "/openapi.json";
pub const SWAGGER_UI: &str = "/swagger-ui";
pub const SWAGGER_UI_FILES: &str = "/swagger-ui/{_:.*}";
const SWAGGER_UI_PREFIX: &str = "/swagger-ui/";
pub const DEMO: &str = "/demo";

// TorchServe's inference API.
pub const PREDICTIONS: &str = "/predictions/{model}";
pub const VERSIONED_PREDICTIONS: &str = "/predictions/{model}/{version}";
pub const EXPLANATIONS: &str = "/explanations/{model}";
pub const VERSIONED_EXPLANATIONS: &str = "/explanations/{model}/{version}";

// TorchServe's management API (its read-only half also on the inference listener).
pub const MODELS: &str = "/models";
pub const MODEL: &str = "/models/{model}";
pub const VERSIONED_MODEL: &str = "/models/{model}/{version}";
const MODELS_PREFIX: &str = "/models/";

// KServe v1.
pub const V1_MODELS: &str = "/v1/models";
pub const V1_MODEL: &str = "/v1/models/{model}";
pub const V1_PREDICT: &str = "/v1/models/{model}:predict";
pub const V1_EXPLAIN: &str = "/v1/models/{model}:explain";
const V1_PREFIX: &str = "/v1/";

// KServe v2 (Open Inference Protocol).
pub const V2: &str = "/v2";
pub const V2_LIVE: &str = "/v2/health/live";
pub const V2_READY: &str = "/v2/health/ready";
const V2_HEALTH_PREFIX: &str = "/v2/health/";
pub const V2_MODEL: &str = "/v2/models/{model}";
pub const V2_MODEL_READY: &str = "/v2/models/{model}/ready";
pub const V2_INFER: &str = "/v2/models/{model}/infer";
pub const V2_EXPLAIN: &str = "/v2/models/{model}/explain";
pub const V2_VERSIONED_MODEL: &str = "/v2/models/{model}/versions/{version}";
pub const V2_VERSIONED_MODEL_READY: &str = "/v2/models/{model}/versions/{version}/ready";
pub const V2_VERSIONED_INFER: &str = "/v2/models/{model}/versions/{version}/infer";
pub const V2_VERSIONED_EXPLAIN: &str = "/v2/models/{model}/versions/{version}/explain";
const V2_PREFIX: &str = "/v2/";

// KServe v2's model repository extension (a management API).
pub const V2_REPOSITORY_INDEX: &str = "/v2/repository/index";
pub const V2_REPOSITORY_LOAD: &str = "/v2/repository/models/{model}/load";
pub const V2_REPOSITORY_UNLOAD: &str = "/v2/repository/models/{model}/unload";
const V2_REPOSITORY_PREFIX: &str = "/v2/repository/";

/// The routes that run a model (TorchServe counts these as inference requests).
const RUN_A_MODEL: &[&str] = &[
    MAX_PREDICT,
    MAX_EXPLAIN,
    PREDICTIONS,
    VERSIONED_PREDICTIONS,
    EXPLANATIONS,
    VERSIONED_EXPLANATIONS,
    V1_PREDICT,
    V1_EXPLAIN,
    V2_INFER,
    V2_EXPLAIN,
    V2_VERSIONED_INFER,
    V2_VERSIONED_EXPLAIN,
];

/// The routes anyone may call: liveness and readiness (for orchestrators), metrics (for
/// scrapers), and the documentation, whose Swagger UI takes a token through its Authorize button.
const OPEN: &[&str] = &[INDEX, PING, METRICS, SWAGGER_JSON, OPENAPI_JSON, SWAGGER_UI];
const OPEN_PREFIXES: &[&str] = &[V2_HEALTH_PREFIX, SWAGGER_UI_PREFIX];

/// Whether the route of `pattern` (as actix matched it) runs a model.
pub fn runs_a_model(pattern: &str) -> bool {
    RUN_A_MODEL.contains(&pattern)
}

/// Whether a request for `path` is one of the open routes.
pub fn is_open(path: &str) -> bool {
    OPEN.contains(&path) || OPEN_PREFIXES.iter().any(|prefix| path.starts_with(prefix))
}

/// Whether `path` is the management API's: TorchServe's `/models…` and KServe v2's repository.
pub fn is_management(path: &str) -> bool {
    path == MODELS || path.starts_with(MODELS_PREFIX) || path.starts_with(V2_REPOSITORY_PREFIX)
}

/// The protocol whose error shape a request for `path` is answered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    KServe,
    Max,
    TorchServe,
}

impl Protocol {
    pub fn of(path: &str) -> Self {
        if path.starts_with(V1_PREFIX) || path.starts_with(V2_PREFIX) || path == V2 {
            Self::KServe
        } else if is_max(path) {
            Self::Max
        } else {
            Self::TorchServe
        }
    }
}

/// Whether `path` is one of the MAX routes (of the first model).
pub fn is_max(path: &str) -> bool {
    path.starts_with(MAX_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_that_runs_a_model_is_counted_and_no_other() {
        for pattern in [
            MAX_PREDICT,
            V1_PREDICT,
            V2_VERSIONED_INFER,
            VERSIONED_EXPLANATIONS,
        ] {
            assert!(runs_a_model(pattern), "{pattern}");
        }
        for pattern in [
            MAX_LABELS,
            MODEL,
            V2_MODEL_READY,
            V2_REPOSITORY_LOAD,
            METRICS,
        ] {
            assert!(!runs_a_model(pattern), "{pattern}");
        }
    }

    #[test]
    fn paths_belong_to_their_api_and_protocol() {
        assert!(is_management(MODELS));
        assert!(is_management("/models/mnist/1.0"));
        assert!(is_management("/v2/repository/index"));
        assert!(!is_management("/modelsx"));
        assert!(!is_management("/v2/models/mnist"));
        assert_eq!(Protocol::of("/v2"), Protocol::KServe);
        assert_eq!(Protocol::of("/v1/models"), Protocol::KServe);
        assert_eq!(Protocol::of("/model/predict"), Protocol::Max);
        assert_eq!(Protocol::of("/predictions/mnist"), Protocol::TorchServe);
        assert_eq!(Protocol::of("/v2x"), Protocol::TorchServe);
    }
}
