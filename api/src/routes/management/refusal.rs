//! Management refusals in TorchServe's shape, `{"code":404,"type":"…","message":"…"}`, typed as
//! TorchServe's `HttpRequestHandler.channelRead0` types them: the simple name of the exception
//! its handlers throw (`ModelNotFoundException`, `ModelVersionNotFoundException`,
//! `ResourceNotFoundException`, `MethodNotAllowedException`, `BadRequestException`, …).

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError};

use crate::errors::{ApiError, TorchServeError, TorchServeErrorBody};

#[derive(Debug)]
pub enum Refusal {
    /// Typed from the error's kind (`BadRequestException`, `ModelNotFoundException`, …).
    Api(TorchServeError),
    /// With the type TorchServe names for this case.
    Typed {
        status: StatusCode,
        kind: &'static str,
        message: String,
        /// The methods the path takes, for a 405's `Allow` header.
        allow: Option<String>,
    },
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        Self::Api(TorchServeError(error))
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Api(error) => error.fmt(f),
            Self::Typed { message, .. } => f.write_str(message),
        }
    }
}

impl ResponseError for Refusal {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Api(error) => error.status_code(),
            Self::Typed { status, .. } => *status,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Api(error) => error.error_response(),
            Self::Typed {
                status,
                kind,
                message,
                allow,
            } => {
                let mut response = HttpResponse::build(*status);
                if let Some(allow) = allow {
                    response.insert_header((header::ALLOW, allow.as_str()));
                }
                response.json(TorchServeErrorBody {
                    code: status.as_u16(),
                    kind,
                    message: message.clone(),
                })
            }
        }
    }
}

/// A model's version that is not served (its model is).
pub fn version_not_found(message: String) -> Refusal {
    Refusal::Typed {
        status: StatusCode::NOT_FOUND,
        kind: "ModelVersionNotFoundException",
        message,
        allow: None,
    }
}

const ROUTES: &str = "GET|POST /models, GET|PUT|DELETE /models/{model_name}[/{version}], PUT /models/{model_name}/{version}/set-default, GET /v1/models/{model_name}, GET /v2/models/{model_name}/ready, POST /v2/repository/index, POST /v2/repository/models/{model_name}/load|unload";

/// TorchServe's `ResourceNotFoundException`, for a path the listener does not serve.
pub fn resource_not_found(path: &str) -> Refusal {
    Refusal::Typed {
        status: StatusCode::NOT_FOUND,
        kind: "ResourceNotFoundException",
        message: format!(
            "Requested resource is not found: the management API has no `{path}`; it serves {ROUTES}"
        ),
        allow: None,
    }
}

/// TorchServe's `MethodNotAllowedException`, for a path served with other methods.
pub fn method_not_allowed(method: &Method, path: &str, allowed: &[Method]) -> Refusal {
    let allowed: Vec<&str> = allowed.iter().map(Method::as_str).collect();
    Refusal::Typed {
        status: StatusCode::METHOD_NOT_ALLOWED,
        kind: "MethodNotAllowedException",
        message: format!(
            "Requested method is not allowed: `{path}` takes {}, not {method}",
            allowed.join(", ")
        ),
        allow: Some(allowed.join(", ")),
    }
}

/// Gives an empty 404 or 405 of a route's own (actix's answer for a method a resource does not
/// take) the body that every other refusal of the listener has.
pub async fn fill_empty_refusals(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let response = next.call(request).await?.map_into_boxed_body();
    let status = response.status();
    let empty = response.response().body().size().is_eof();
    if !empty
        || !matches!(
            status,
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
        )
    {
        return Ok(response);
    }
    let (request, answered) = response.into_parts();
    let refusal = if status == StatusCode::NOT_FOUND {
        resource_not_found(request.path())
    } else {
        let allowed: Vec<Method> = answered
            .headers()
            .get(header::ALLOW)
            .and_then(|allow| allow.to_str().ok())
            .map(|allow| {
                allow
                    .split(',')
                    .filter_map(|method| method.trim().parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        method_not_allowed(request.method(), request.path(), &allowed)
    };
    Ok(ServiceResponse::new(request, refusal.error_response()))
}
