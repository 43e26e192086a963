//! A panic in a handler becomes a logged 500 with a JSON body, not a dropped connection.

use std::panic::AssertUnwindSafe;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use futures_util::FutureExt;

use crate::errors::ApiError;

pub async fn catch_panic(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // Only the method and URI are kept (cheap clones, formatted only on a panic): a clone of the
    // HttpRequest would make actix's routing panic.
    let (method, uri) = (request.method().clone(), request.uri().clone());
    match AssertUnwindSafe(next.call(request)).catch_unwind().await {
        Ok(response) => response.map(ServiceResponse::map_into_boxed_body),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            Err(ApiError::Internal(format!(
                "internal error while serving {method} {} ({what}): please report it; the server keeps serving",
                uri.path()
            ))
            .into())
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::{middleware::from_fn, test, web, App, HttpResponse};

    use super::*;

    #[actix_web::test]
    async fn a_panicking_handler_answers_500_json_and_the_app_keeps_serving() {
        let app = test::init_service(
            App::new()
                .wrap(from_fn(catch_panic))
                .route(
                    "/boom",
                    web::get().to(|| async {
                        if true {
                            panic!("kaboom");
                        }
                        HttpResponse::Ok().finish()
                    }),
                )
                .route(
                    "/fine",
                    web::get().to(|| async { HttpResponse::Ok().body("fine") }),
                ),
        )
        .await;
        let error =
            match test::try_call_service(&app, test::TestRequest::get().uri("/boom").to_request())
                .await
            {
                Ok(response) => panic!("expected an error, got {}", response.status()),
                Err(error) => error,
            };
        let response = error.error_response();
        assert_eq!(response.status(), 500);
        let body = actix_web::body::to_bytes(response.into_body())
            .await
            .unwrap_or_default();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        assert_eq!(body["status"], "error");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("kaboom") && message.contains("GET /boom"),
            "{message}"
        );
        let response =
            test::call_service(&app, test::TestRequest::get().uri("/fine").to_request()).await;
        assert_eq!(response.status(), 200);
    }
}
