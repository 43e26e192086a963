//! The management listener's paths, routed as TorchServe's `ManagementRequestHandler` routes
//! them: the path is split on `/` as Java's `String.split` splits it (trailing empty segments
//! dropped, so `/models/m/` is `/models/m`; inner ones kept, so `/models//1.0` names the model
//! ``), then chosen by its segments and the method.

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};

use super::refusal::{method_not_allowed, resource_not_found, Refusal};
use crate::resolved::Resolved;
use crate::state::AppState;

/// `path`'s segments as `path.split("/")` gives them in Java: the first is the empty one before
/// the leading `/`, and trailing empty ones are dropped.
pub fn segments(path: &str) -> Vec<&str> {
    let mut segments: Vec<&str> = path.split('/').collect();
    while segments.last() == Some(&"") {
        segments.pop();
    }
    segments
}

/// Every request the listener's own routes do not take.
pub async fn dispatch(
    request: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, Refusal> {
    let path = request.match_info().as_str().to_owned();
    let method = request.method();
    let query = request.query_string();
    let not_allowed = |allowed: &[Method]| Err(method_not_allowed(method, &path, allowed));
    // With `enable_model_api=false` TorchServe takes neither registration nor unregistration
    // (`ManagementRequestHandler.handleRequest`: a MethodNotAllowedException).
    let model_api = state.settings.model_api;
    match segments(&path).as_slice() {
        ["", "models"] => match *method {
            Method::GET => super::list(&state, query),
            Method::POST if model_api => super::register(&request, &state, payload).await,
            _ if model_api => not_allowed(&[Method::GET, Method::POST]),
            _ => not_allowed(&[Method::GET]),
        },
        ["", "models", name, rest @ ..] if rest.len() <= 1 => {
            let version = rest.first().copied();
            match *method {
                Method::GET => super::describe(&state, name, version, query),
                Method::PUT => super::scale(&state, name, version, query),
                Method::DELETE if model_api => super::unregister(&state, name, version, query),
                _ if model_api => not_allowed(&[Method::GET, Method::PUT, Method::DELETE]),
                _ => not_allowed(&[Method::GET, Method::PUT]),
            }
        }
        // TorchServe also answers GET here with a description and DELETE by unregistering the
        // default version; only PUT is what the path says.
        ["", "models", name, version, "set-default"] => match *method {
            Method::PUT => super::set_default(&state, name, version, query),
            _ => not_allowed(&[Method::PUT]),
        },
        // KServe's v1 health check, `{name}` up to a `:`, an unknown one refused in TorchServe's
        // shape (TorchServe's `isKFV1ManagementReq` and `handleKF1ModelReady`).
        ["", "v1", "models", name] => match *method {
            Method::GET => {
                let name = name.split(':').next().unwrap_or_default();
                let served = state.registry.resolve(name, None)?;
                Ok(crate::routes::kserve_v1::model_status(Resolved::from(served)).await)
            }
            _ => not_allowed(&[Method::GET]),
        },
        _ => Err(resource_not_found(&path)),
    }
}

#[cfg(test)]
mod tests {
    use super::segments;

    #[test]
    fn paths_split_as_java_splits_them() {
        assert_eq!(segments("/models"), ["", "models"]);
        assert_eq!(segments("/models/m/"), ["", "models", "m"]);
        assert_eq!(segments("/models/m/1.0//"), ["", "models", "m", "1.0"]);
        assert_eq!(segments("/models//1.0"), ["", "models", "", "1.0"]);
        assert_eq!(segments("//models"), ["", "", "models"]);
        assert!(segments("/").is_empty());
    }
}
