//! Triton's model repository extension of the v2 protocol, on the management listener, over the
//! same registry and model store as TorchServe's management API: `POST /v2/repository/index`,
//! `/v2/repository/models/{model}/load` and `/unload` (what `tritonclient`'s
//! `get_model_repository_index`, `load_model` and `unload_model` call). The model `{model}` is
//! the store's `{model}.mar` (else `.pt`, `.pth`, `.safetensors`).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use crate::endpoints;
use crate::errors::{ApiError, KServeError};
use crate::model_store;
use crate::state::AppState;
use crate::upload::{parse_json, read_body};

const EXTENSIONS: [&str; 4] = ["mar", "pt", "pth", "safetensors"];

#[derive(Serialize)]
struct IndexEntry {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    state: &'static str,
    reason: &'static str,
}

/// The models served (`READY`), then the store's model files not served (`UNAVAILABLE`).
async fn index(
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, KServeError> {
    check_body(&state, payload).await?;
    let served = state.registry.all();
    let mut entries: Vec<IndexEntry> = served
        .iter()
        .map(|served| IndexEntry {
            name: served.info().name.clone(),
            version: Some(served.info().version.clone()),
            state: "READY",
            reason: "",
        })
        .collect();
    let mut unloaded: Vec<String> = state
        .settings
        .model_store
        .as_deref()
        .and_then(|store| std::fs::read_dir(store).ok())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            let extension = path.extension()?.to_str()?;
            let stem = path.file_stem()?.to_str()?.to_owned();
            let file = entry.file_name().to_str()?.to_owned();
            let is_served = served
                .iter()
                .any(|s| s.info().name == stem || s.url == file);
            (EXTENSIONS.contains(&extension) && !is_served).then_some(stem)
        })
        .collect();
    unloaded.sort();
    unloaded.dedup();
    entries.extend(unloaded.into_iter().map(|name| IndexEntry {
        name,
        version: None,
        state: "UNAVAILABLE",
        reason: "unloaded",
    }));
    Ok(HttpResponse::Ok().json(entries))
}

/// Serves `{model}` from the store; a model already served stays as it is.
async fn load(
    request: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, KServeError> {
    check_body(&state, payload).await?;
    let name = request.match_info().get("model").unwrap_or_default();
    if state.registry.resolve(name, None).is_ok() {
        return Ok(HttpResponse::Ok().finish());
    }
    let file = file_of(&state, name)?;
    let served = model_store::register(&state, &file, Some(name.to_owned())).await?;
    log::info!(
        "loaded model `{}` version {} from {file}",
        served.info().name,
        served.info().version
    );
    Ok(HttpResponse::Ok().finish())
}

async fn unload(
    request: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, KServeError> {
    check_body(&state, payload).await?;
    let name = request.match_info().get("model").unwrap_or_default();
    state.unregister(name, None)?;
    log::info!("unloaded model `{name}`");
    Ok(HttpResponse::Ok().finish())
}

/// The store's file for `name`: `name.mar`, else another model file of that stem.
fn file_of(state: &AppState, name: &str) -> Result<String, ApiError> {
    let store = state.settings.model_store.as_deref();
    EXTENSIONS
        .iter()
        .map(|extension| format!("{name}.{extension}"))
        .find(|file| model_store::resolve(store, file).is_ok())
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "the model store has no {}: copy the model there first",
                EXTENSIONS
                    .map(|extension| format!("`{name}.{extension}`"))
                    .join(", ")
            ))
        })
}

/// The body is empty or a JSON object (Triton's `{"parameters": …}`, `{"ready": …}`), read and
/// bounded like any other.
async fn check_body(state: &AppState, payload: web::Payload) -> Result<(), ApiError> {
    let body = read_body(payload, &state.settings.limits).await?;
    if !body.iter().all(u8::is_ascii_whitespace) {
        parse_json::<serde_json::Map<String, serde_json::Value>>(&body, &state.settings.limits)?;
    }
    Ok(())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource(endpoints::V2_REPOSITORY_INDEX).route(web::post().to(index)))
        .service(web::resource(endpoints::V2_REPOSITORY_LOAD).route(web::post().to(load)))
        .service(web::resource(endpoints::V2_REPOSITORY_UNLOAD).route(web::post().to(unload)));
}
