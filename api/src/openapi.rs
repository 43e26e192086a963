//! The OpenAPI document, with `info` from the configuration.

use utoipa::OpenApi;

use crate::errors::ErrorBody;
use crate::routes::{docs, explain, health, kserve_v1, kserve_v2, model, torchserve};
use crate::{ApiInfo, ModelMetadata};

#[derive(OpenApi)]
#[openapi(
    paths(
        model::metadata,
        model::labels,
        model::predict,
        explain::explain_route,
        health::ping,
        health::metrics,
        kserve_v1::list_models,
        kserve_v1::model_status,
        kserve_v1::predict,
        kserve_v1::explain_route,
        kserve_v2::server_metadata,
        kserve_v2::live,
        kserve_v2::ready,
        kserve_v2::metadata,
        kserve_v2::model_ready,
        kserve_v2::infer,
        torchserve::predictions,
        torchserve::versioned_predictions,
        torchserve::explanations,
        torchserve::models,
        torchserve::describe_model,
        docs::index,
        docs::demo,
        docs::swagger_json,
        docs::openapi_json,
    ),
    components(schemas(ErrorBody, ModelMetadata)),
    tags(
        (name = "MAX", description = "Model Asset Exchange routes: metadata, labels, prediction"),
        (name = "TorchServe", description = "TorchServe's inference and management routes, as its MNIST example answers them"),
        (name = "KServe v1", description = "KServe's v1 inference protocol"),
        (name = "KServe v2", description = "KServe's v2 inference protocol (Open Inference Protocol), with Triton's binary tensor extension"),
        (name = "operations", description = "Health, documentation and the demo page"),
    )
)]
struct ApiDoc;

/// The document served at `/swagger.json` and `/openapi.json`.
pub fn document(info: &ApiInfo) -> utoipa::openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    document.info.title = info.title.clone();
    document.info.description = Some(info.description.clone());
    document.info.version = info.version.clone();
    document
}
