//! What every handler shares: the models served, the settings, the metrics, and the OpenAPI
//! document of the models served now.

use std::sync::{Arc, RwLock};

use actix_web::web;

use crate::errors::ApiError;
use crate::metrics::Metrics;
use crate::registry::{LoadedModel, Registration, Registry, ServedModel};
use crate::settings::ServiceSettings;

/// Writes the OpenAPI document of the models served. The server, which knows the routes, gives it.
pub type DocumentWriter = fn(&ServiceSettings, &Registry) -> serde_json::Result<web::Bytes>;

/// What every handler shares, on every listener.
pub struct AppState {
    pub registry: Registry,
    pub settings: ServiceSettings,
    /// Serialised again whenever a model comes or goes.
    openapi_json: RwLock<web::Bytes>,
    write_document: DocumentWriter,
    pub metrics: Metrics,
}

impl AppState {
    /// The state of a server serving `registry`'s models, its document written by `write_document`.
    pub fn new(
        registry: Registry,
        settings: ServiceSettings,
        metrics: Metrics,
        write_document: DocumentWriter,
    ) -> serde_json::Result<Self> {
        let openapi_json = RwLock::new(write_document(&settings, &registry)?);
        Ok(Self {
            registry,
            settings,
            openapi_json,
            write_document,
            metrics,
        })
    }

    /// The OpenAPI document for the models served now.
    pub fn openapi_json(&self) -> web::Bytes {
        match self.openapi_json.read() {
            Ok(json) => json.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Serves `loaded` too, at once (a 409 when its name is taken).
    pub fn register(&self, loaded: LoadedModel) -> Result<Arc<ServedModel>, ApiError> {
        self.register_with(loaded, Registration::default())
    }

    /// [`AppState::register`], keeping what TorchServe's management API said about the model.
    pub fn register_with(
        &self,
        loaded: LoadedModel,
        registration: Registration,
    ) -> Result<Arc<ServedModel>, ApiError> {
        let served = self
            .registry
            .add_registered(loaded, registration, &self.metrics)?;
        self.refresh_openapi();
        Ok(served)
    }

    /// Stops serving `name` (of `version`, when given); requests in flight finish.
    pub fn unregister(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Arc<ServedModel>, ApiError> {
        let removed = self.registry.remove(name, version, &self.metrics)?;
        self.refresh_openapi();
        Ok(removed)
    }

    /// Makes `version` the default version of the model `name` (a 404 when either is not served).
    pub fn set_default_version(
        &self,
        name: &str,
        version: &str,
    ) -> Result<Arc<ServedModel>, ApiError> {
        let chosen = self.registry.set_default(name, version)?;
        self.refresh_openapi();
        Ok(chosen)
    }

    fn refresh_openapi(&self) {
        match (self.write_document)(&self.settings, &self.registry) {
            Ok(json) => {
                let mut current = match self.openapi_json.write() {
                    Ok(current) => current,
                    Err(poisoned) => poisoned.into_inner(),
                };
                *current = json;
            }
            Err(err) => log::error!("cannot serialise the OpenAPI document: {err}"),
        }
    }
}
