//! MAX-style errors: `{"status":"error","message":"…"}` with a 4xx/5xx status.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use max_mnist_core::{CoreError, InputError};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("the request body is larger than {limit} bytes (setting limits.max_body_bytes): send a smaller image")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    ImageTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the request took longer than {seconds} s to arrive (setting limits.request_timeout_secs): send it faster or raise the limit")]
    Timeout { seconds: u64 },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// No route has this path.
    #[error("{0}")]
    NoRoute(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotImplemented(String),
    #[error("{0}")]
    ServiceUnavailable(String),
    #[error("{0}")]
    Internal(String),
}

/// The JSON body of every error of the MAX routes.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    #[schema(example = "error")]
    pub status: &'static str,
    #[schema(
        example = "the upload is not an image in a supported format: send PNG, JPEG, GIF, BMP, WebP or TIFF"
    )]
    pub message: String,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge { .. } | Self::ImageTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Timeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) | Self::NoRoute(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Self::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Internal(message) = self {
            log::error!("{message}");
        }
        HttpResponse::build(self.status_code()).json(ErrorBody {
            status: "error",
            message: self.to_string(),
        })
    }
}

/// The problem itself, out of the instance that holds it.
fn innermost(err: &InputError) -> &InputError {
    match err {
        InputError::At { source, .. } => innermost(source),
        other => other,
    }
}

impl From<CoreError> for ApiError {
    fn from(err: CoreError) -> Self {
        match err {
            CoreError::Input(err) => {
                let message = err.to_string();
                match innermost(&err) {
                    InputError::TooManyPixels { .. }
                    | InputError::SideTooLong { .. }
                    | InputError::DecoderMemory { .. } => Self::ImageTooLarge(message),
                    InputError::NotRaster(_) => Self::UnsupportedMediaType(message),
                    _ => Self::BadRequest(message),
                }
            }
            CoreError::Argument(message) | CoreError::Unsupported(message) => {
                Self::BadRequest(message)
            }
            other @ (CoreError::Weights(_)
            | CoreError::Inference(_)
            | CoreError::Engine(_)
            | CoreError::Encoding(_)
            | CoreError::Internal(_)) => Self::Internal(other.to_string()),
        }
    }
}

/// An [`ApiError`] answered in TorchServe's shape: `{"code":400,"type":"BadRequestException","message":"…"}`.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct TorchServeError(#[from] pub ApiError);

#[derive(Debug, Serialize, ToSchema)]
pub struct TorchServeErrorBody {
    #[schema(example = 400)]
    pub code: u16,
    #[serde(rename = "type")]
    #[schema(example = "BadRequestException")]
    pub kind: &'static str,
    pub message: String,
}

impl ResponseError for TorchServeError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(message) = &self.0 {
            log::error!("{message}");
        }
        let status = self.status_code();
        let kind = match &self.0 {
            ApiError::BadRequest(_) => "BadRequestException",
            ApiError::PayloadTooLarge { .. } | ApiError::ImageTooLarge(_) => {
                "RequestEntityTooLargeException"
            }
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaTypeException",
            ApiError::Timeout { .. } => "RequestTimeoutException",
            ApiError::Unauthorized(_) => "InvalidKeyException",
            ApiError::Forbidden(_) => "ForbiddenException",
            ApiError::NotFound(_) => "ModelNotFoundException",
            ApiError::NoRoute(_) => "ResourceNotFoundException",
            ApiError::MethodNotAllowed(_) => "MethodNotAllowedException",
            ApiError::Conflict(_) => "ConflictStatusException",
            ApiError::NotImplemented(_) => "NotImplementedException",
            ApiError::ServiceUnavailable(_) => "ServiceUnavailableException",
            ApiError::Internal(_) => "InternalServerException",
        };
        HttpResponse::build(status).json(TorchServeErrorBody {
            code: status.as_u16(),
            kind,
            message: self.0.to_string(),
        })
    }
}

/// An [`ApiError`] answered in KServe's shape: `{"error":"…"}`.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct KServeError(#[from] pub ApiError);

#[derive(Debug, Serialize, ToSchema)]
pub struct KServeErrorBody {
    pub error: String,
}

impl ResponseError for KServeError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(message) = &self.0 {
            log::error!("{message}");
        }
        HttpResponse::build(self.status_code()).json(KServeErrorBody {
            error: self.0.to_string(),
        })
    }
}

pub const UPLOAD_HINT: &str = "send the image as multipart/form-data in the field `file`, e.g. `curl -F file=@0.png http://HOST:5000/model/predict`";
