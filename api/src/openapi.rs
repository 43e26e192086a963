//! The OpenAPI document, with `info` from the configuration.

use utoipa::OpenApi;

use crate::errors::ErrorBody;
use crate::routes::{docs, health, model};
use crate::{ApiInfo, ModelMetadata};

#[derive(OpenApi)]
#[openapi(
    paths(
        model::metadata,
        model::labels,
        model::predict,
        health::ping,
        docs::index,
        docs::swagger_json,
        docs::openapi_json,
    ),
    components(schemas(ErrorBody, ModelMetadata)),
    tags(
        (name = "MAX", description = "Model Asset Exchange routes: metadata, labels, prediction"),
        (name = "operations", description = "Health and documentation"),
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
