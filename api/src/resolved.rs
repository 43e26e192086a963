//! The model a route serves: the extractor reads `{model}` (and `{version}`) from the path, and
//! answers an unknown one with a 404 in the route's protocol, listing the models served.

use std::future::{ready, Ready};
use std::marker::PhantomData;
use std::sync::Arc;

use actix_web::{dev::Payload, web, FromRequest, HttpRequest, ResponseError};

use crate::errors::ApiError;
use crate::registry::{ServedModel, NO_MODEL};
use crate::state::AppState;

/// The model a request names in its path (`{model}`, `{version}`), or the first model for routes
/// without one; refused in the route's error shape `E`.
pub struct Resolved<E> {
    pub served: Arc<ServedModel>,
    protocol: PhantomData<E>,
}

impl<E> From<Arc<ServedModel>> for Resolved<E> {
    fn from(served: Arc<ServedModel>) -> Self {
        Self {
            served,
            protocol: PhantomData,
        }
    }
}

impl<E> std::ops::Deref for Resolved<E> {
    type Target = ServedModel;

    fn deref(&self) -> &ServedModel {
        &self.served
    }
}

impl<E: From<ApiError> + ResponseError + 'static> FromRequest for Resolved<E> {
    type Error = E;
    type Future = Ready<Result<Self, E>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let resolved = (|| {
            let state = request
                .app_data::<web::Data<AppState>>()
                .ok_or_else(|| ApiError::Internal("the application state is missing".into()))?;
            let registry = &state.registry;
            match request.match_info().get("model") {
                Some(name) => registry.resolve(name, request.match_info().get("version")),
                None => registry
                    .first()
                    .ok_or_else(|| ApiError::NotFound(format!("{NO_MODEL}."))),
            }
        })();
        ready(
            resolved
                .map(|served| Self {
                    served,
                    protocol: PhantomData,
                })
                .map_err(E::from),
        )
    }
}
