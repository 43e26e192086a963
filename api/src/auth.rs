//! Bearer tokens, as TorchServe 0.12 asks for them: one for the inference API, one for the
//! management API, each off unless set. Only the token's SHA-256 digest is kept, and a presented
//! token is hashed and compared in constant time, so neither the time taken nor the token's length
//! tells an attacker anything. Health routes, `/metrics` and the API documentation stay open.

use std::fmt;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse, ResponseError};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::endpoints::{self, Protocol};
use crate::errors::{ApiError, KServeError, TorchServeError};

/// A secret a client must send as `Authorization: Bearer <token>`. It is never printed.
#[derive(Clone)]
pub struct Token {
    digest: [u8; 32],
}

impl Token {
    /// `None` for an empty or blank secret, which would let anyone in.
    pub fn new(secret: &str) -> Option<Self> {
        let secret = secret.trim();
        (!secret.is_empty()).then(|| Self {
            digest: Sha256::digest(secret.as_bytes()).into(),
        })
    }

    pub fn matches(&self, presented: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        digest.ct_eq(&self.digest).into()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(redacted)")
    }
}

/// The tokens the two APIs ask for; `None`: that API is open.
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    pub inference: Option<Token>,
    pub management: Option<Token>,
}

/// Which API a listener serves, and so which token it asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Inference,
    Management,
    /// Both on one listener (TorchServe's `inference_address == management_address`): each
    /// route asks for its own API's token.
    Both,
    /// `/metrics` alone, open as it is on the inference listener.
    Metrics,
}

impl Api {
    /// The API a request to `path` belongs to, on a listener serving `self`.
    fn of_path(self, path: &str) -> Self {
        match self {
            Self::Both if endpoints::is_management(path) => Self::Management,
            Self::Both => Self::Inference,
            api => api,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Inference => "the inference token (the server's --inference-token, env INFERENCE_TOKEN, or the `inference` key of --token-file)",
            Self::Management => "the management token (the server's --management-token, env MANAGEMENT_TOKEN, or the `management` key of --token-file)",
            Self::Both | Self::Metrics => "the token of this API",
        }
    }

    fn token(self, tokens: &AuthSettings) -> Option<&Token> {
        match self {
            Self::Inference => tokens.inference.as_ref(),
            Self::Management => tokens.management.as_ref(),
            Self::Both | Self::Metrics => None,
        }
    }
}

/// The tokens one listener's routes ask for, as that listener's app data.
#[derive(Debug, Clone)]
pub struct RequiredToken {
    pub api: Api,
    pub tokens: AuthSettings,
}

/// Routes anyone may call, on the inference API; `/metrics` alone on its own listener.
fn is_open(api: Api, path: &str) -> bool {
    api == Api::Metrics || api == Api::Inference && endpoints::is_open(path)
}

/// Answers a request without the listener's token with a 401 in its protocol's error shape.
pub async fn require_token(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let required = request.app_data::<web::Data<RequiredToken>>().cloned();
    let problem = required.and_then(|required| {
        let api = required.api.of_path(request.path());
        let token = api.token(&required.tokens)?;
        if is_open(api, request.path()) {
            return None;
        }
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .map(|value| value.as_bytes())
            .and_then(bearer);
        match presented {
            Some(presented) if token.matches(presented) => None,
            Some(_) => Some(format!(
                "the bearer token sent is not {}: send that one",
                api.describe()
            )),
            None => Some(format!(
                "this route needs {}: send it as `Authorization: Bearer <token>`",
                api.describe()
            )),
        }
    });
    match problem {
        None => next
            .call(request)
            .await
            .map(ServiceResponse::map_into_boxed_body),
        Some(message) => {
            let mut response = refusal(request.path(), ApiError::Unauthorized(message));
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            Ok(request.into_response(response))
        }
    }
}

/// The management API answers scripts, not web pages: a browser adds `Origin` to every cross-site
/// POST, and a simple one (no preflight) would register a model before any CORS check could stop
/// it; a page reached by DNS rebinding sends it too. Such requests are refused before they act.
pub async fn refuse_web_pages(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let management = request
        .app_data::<web::Data<RequiredToken>>()
        .is_some_and(|required| required.api.of_path(request.path()) == Api::Management);
    if management && request.headers().contains_key(header::ORIGIN) {
        let error = ApiError::Forbidden(
            "the management API takes no requests from web pages (this one carries an Origin header): call it from a script or the command line, e.g. curl".into(),
        );
        let response = refusal(request.path(), error);
        return Ok(request.into_response(response));
    }
    next.call(request)
        .await
        .map(ServiceResponse::map_into_boxed_body)
}

/// `error` in the error shape of the protocol `path` belongs to: KServe's, MAX's, else TorchServe's.
pub(crate) fn refusal(path: &str, error: ApiError) -> HttpResponse {
    match Protocol::of(path) {
        Protocol::KServe => KServeError(error).error_response(),
        Protocol::Max => error.error_response(),
        Protocol::TorchServe => TorchServeError(error).error_response(),
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let scheme = value.get(..7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = value[7..].trim_ascii();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_matches_itself_only_and_never_prints() {
        let token = Token::new("s3cret-token").expect("a token");
        assert!(token.matches(b"s3cret-token"));
        assert!(!token.matches(b"s3cret-tokeN"));
        assert!(!token.matches(b"s3cret-token "));
        assert!(!token.matches(b""));
        assert!(!format!("{token:?}").contains("s3cret"));
        assert!(Token::new("  ").is_none());
    }

    #[test]
    fn bearer_headers_are_read_as_rfc_6750_writes_them() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Bear"), None);
    }

    #[test]
    fn only_health_metrics_and_documentation_are_open_and_only_for_inference() {
        for open in [
            "/ping",
            "/v2/health/live",
            "/v2/health/ready",
            "/metrics",
            "/",
            "/swagger-ui/index.html",
        ] {
            assert!(is_open(Api::Inference, open), "{open}");
            assert!(!is_open(Api::Management, open), "{open}");
        }
        for closed in [
            "/models",
            "/predictions/mnist",
            "/v2/models/mnist/infer",
            "/v1/models",
            "/model/predict",
            "/demo",
            "/v2",
            "/pingx",
        ] {
            assert!(!is_open(Api::Inference, closed), "{closed}");
        }
    }
}
