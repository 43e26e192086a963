//! The OpenAPI document: `info` from the configuration, the `{model}` parameters from the models
//! served.

use max_mnist_core::ModelInfo;
use serde_json::json;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::RefOr;
use utoipa::OpenApi;

use crate::errors::ErrorBody;
use crate::routes::{
    demo, docs, explain, health, kserve_v1, kserve_v2, management, model, torchserve,
};
use crate::ApiInfo;

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
        kserve_v2::explain,
        torchserve::predictions,
        torchserve::versioned_predictions,
        torchserve::explanations,
        torchserve::versioned_explanations,
        management::models,
        management::describe_model,
        docs::index,
        demo::demo,
        docs::swagger_json,
        docs::openapi_json,
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "MAX", description = "Model Asset Exchange routes of the first model: metadata, labels, prediction, explanation"),
        (name = "TorchServe", description = "TorchServe's inference and management routes, as TorchServe answers them"),
        (name = "KServe v1", description = "KServe's v1 inference protocol"),
        (name = "KServe v2", description = "KServe's v2 inference protocol (Open Inference Protocol), with Triton's binary tensor extension"),
        (name = "operations", description = "Health, documentation and the demo page"),
    )
)]
struct ApiDoc;

/// The document served at `/swagger.json` and `/openapi.json`, for `models` (the first answers the
/// MAX routes); with `bearer_token`, every operation asks for it, and Swagger UI's Authorize
/// button sends it.
pub fn document(
    info: &ApiInfo,
    models: &[ModelInfo],
    bearer_token: bool,
) -> utoipa::openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    if bearer_token {
        document
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                BEARER,
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
        document.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
    }
    document.info.title = info.title.clone();
    document.info.description = Some(info.description.clone());
    document.info.version = info.version.clone();
    let served: Vec<String> = models
        .iter()
        .map(|m| {
            format!(
                "`{}` ({} from {}, version {})",
                m.name, m.network.name, m.network.origin, m.version
            )
        })
        .collect();
    let description = format!("A served model: {}", served.join(", "));
    let served = Served {
        names: models.iter().map(|m| m.name.clone()).collect(),
        versions: distinct(models.iter().map(|m| m.version.clone())),
        description,
    };
    for item in document.paths.paths.values_mut() {
        let operations = [
            ("get", &mut item.get),
            ("post", &mut item.post),
            ("put", &mut item.put),
            ("delete", &mut item.delete),
        ];
        let mut ids = Vec::new();
        for (method, operation) in operations {
            let Some(operation) = operation else {
                continue;
            };
            describe_path_parameters(operation, &served);
            distinct_operation_id(operation, method, &mut ids);
        }
    }
    document
}

/// One handler documented for two methods (`POST` and `PUT` of `/predictions/{model}`) gets one
/// operation id per method, as OpenAPI asks: the second is suffixed with its method.
fn distinct_operation_id(operation: &mut Operation, method: &str, ids: &mut Vec<String>) {
    if let Some(id) = &mut operation.operation_id {
        if ids.contains(id) {
            id.push('_');
            id.push_str(method);
        }
        ids.push(id.clone());
    }
}

const BEARER: &str = "bearer";

/// What the path parameters may be: the names and versions of the models served, the first
/// pre-filled.
struct Served {
    names: Vec<String>,
    versions: Vec<String>,
    description: String,
}

fn distinct(values: impl Iterator<Item = String>) -> Vec<String> {
    let mut distinct: Vec<String> = Vec::new();
    for value in values {
        if !distinct.contains(&value) {
            distinct.push(value);
        }
    }
    distinct
}

/// `{model}` and `{version}` as the models served answer them: another name is a 404.
fn describe_path_parameters(operation: &mut Operation, served: &Served) {
    let parameters = operation.parameters.iter_mut().flatten();
    for parameter in parameters {
        let RefOr::T(parameter) = parameter else {
            continue;
        };
        match parameter.name.as_str() {
            "model" => {
                parameter.description = Some(served.description.clone());
                parameter.schema = Some(one_of_strings(&served.names));
            }
            "version" => parameter.schema = Some(one_of_strings(&served.versions)),
            _ => {}
        }
    }
}

/// A string among `values`, the first pre-filled; any string while there are none.
fn one_of_strings(values: &[String]) -> RefOr<utoipa::openapi::Schema> {
    RefOr::T(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .default(values.first().map(|value| json!(value)))
            .enum_values((!values.is_empty()).then(|| values.to_vec()))
            .into(),
    )
}
