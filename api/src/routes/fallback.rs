//! The answers no handler writes: a path no route has (404), and a method its route does not take
//! (405, with actix's `Allow` header). actix sends both with an empty body; here they get a body in
//! the error shape of the protocol the path belongs to, as every handler's own errors have.
//! TorchServe answers both the same way (its `InvalidRequestHandler` throws
//! `ResourceNotFoundException`, its handlers `MethodNotAllowedException`, and `HttpRequestHandler`
//! sends them as 404 and 405 with their class names as `type`).

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;

use crate::auth::refusal;
use crate::errors::ApiError;

/// The most of a request's path an error message repeats.
const ECHOED_PATH_CHARS: usize = 120;

/// Gives actix's empty 404 and 405 answers a body; every other response passes unchanged.
pub async fn with_error_body(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let response = next.call(request).await?.map_into_boxed_body();
    let empty = matches!(
        response.response().body().size(),
        BodySize::None | BodySize::Sized(0)
    );
    if !empty {
        return Ok(response);
    }
    let request = response.request();
    let path = request.path().to_owned();
    let method = request.method().clone();
    let allow = response.headers().get(header::ALLOW).cloned();
    let shown = shown_path(&path);
    let error = match response.status() {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = allow
                .as_ref()
                .and_then(|allow| allow.to_str().ok())
                .filter(|allow| !allow.is_empty())
                .map(|allow| format!("use {allow}"))
                .unwrap_or_else(|| "the methods it takes are in /openapi.json".to_owned());
            ApiError::MethodNotAllowed(format!("{shown} does not take {method}: {allowed}"))
        }
        // A route whose guard turned the method away (actix then falls through to the default
        // service, which answers 404) has the path all the same.
        StatusCode::NOT_FOUND if request.resource_map().has_resource(&path) => {
            ApiError::MethodNotAllowed(format!(
                "{shown} does not take {method}: the methods it takes are in /openapi.json"
            ))
        }
        StatusCode::NOT_FOUND => ApiError::NoRoute(format!(
            "no route {method} {shown}: the routes are listed in /openapi.json (Swagger UI at /swagger-ui/)"
        )),
        _ => return Ok(response),
    };
    let mut answer = refusal(&path, error);
    if let Some(allow) = allow {
        answer.headers_mut().insert(header::ALLOW, allow);
    }
    let (request, _) = response.into_parts();
    Ok(ServiceResponse::new(request, answer))
}

/// `path`, cut short when it is long: it is the client's, and only needs recognising.
fn shown_path(path: &str) -> String {
    match path.char_indices().nth(ECHOED_PATH_CHARS) {
        Some((end, _)) => format!("`{}…`", &path[..end]),
        None => format!("`{path}`"),
    }
}

#[cfg(test)]
mod tests {
    use actix_web::middleware::from_fn;
    use actix_web::test::{call_service, init_service, read_body, read_body_json, TestRequest};
    use actix_web::{web, App, HttpResponse};
    use serde_json::Value;

    use super::*;

    #[actix_web::test]
    async fn empty_404s_and_405s_get_a_body_in_the_paths_protocol_and_others_pass() {
        let app = init_service(
            App::new()
                .wrap(from_fn(with_error_body))
                .service(web::resource("/ping").route(web::get().to(HttpResponse::Ok)))
                .service(
                    web::resource("/v2/health/live")
                        .route(web::get().to(|| async { HttpResponse::NotFound().body("kept") })),
                ),
        )
        .await;
        let call = |method: &str, path: &str| {
            TestRequest::default()
                .method(method.parse().expect("a method"))
                .uri(path)
                .to_request()
        };
        let response = call_service(&app, call("TRACE", "/ping")).await;
        assert_eq!(response.status(), 405);
        assert_eq!(
            response.headers().get(header::ALLOW).map(|v| v.as_bytes()),
            Some(&b"GET"[..])
        );
        let body: Value = read_body_json(response).await;
        assert_eq!(body["code"], 405);
        assert_eq!(body["type"], "MethodNotAllowedException");
        assert_eq!(body["message"], "`/ping` does not take TRACE: use GET");

        let response = call_service(&app, call("GET", "/v1/nothing")).await;
        assert_eq!(response.status(), 404);
        let body: Value = read_body_json(response).await;
        assert!(body["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("no route GET `/v1/nothing`")));

        let response = call_service(&app, call("GET", "/model/nothing")).await;
        let body: Value = read_body_json(response).await;
        assert_eq!(body["status"], "error");

        let response = call_service(&app, call("GET", "/v2/health/live")).await;
        assert_eq!(response.status(), 404);
        assert_eq!(read_body(response).await, "kept");
        let response = call_service(&app, call("GET", "/ping")).await;
        assert_eq!(response.status(), 200);
        assert_eq!(read_body(response).await, "");
    }

    #[test]
    fn long_paths_are_cut_short_on_a_character_boundary() {
        let long = "é".repeat(500);
        let shown = shown_path(&long);
        assert_eq!(shown.chars().count(), ECHOED_PATH_CHARS + 3);
        assert_eq!(shown_path("/x"), "`/x`");
    }
}
