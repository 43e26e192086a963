//! The middleware that records every request in the [`Metrics`](crate::metrics::Metrics).

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

use crate::endpoints;
use crate::state::AppState;
use crate::work_queue::measure_queue_wait;

/// Records every request under its route pattern (`/predictions/{model}`, not the raw path, so that
/// the number of series stays bounded) and its model (a served one only, for the same reason; the
/// MAX routes' is the first model); requests that match no route count as `unmatched`.
pub async fn record(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let state = request.app_data::<web::Data<AppState>>().cloned();
    let method = request.method().clone();
    let (result, queued_micros) = measure_queue_wait(next.call(request)).await;
    if let Some(state) = state {
        let elapsed = started.elapsed();
        let (route, status, named, version) = match &result {
            Ok(response) => {
                let request = response.request();
                let info = request.match_info();
                let named = info.get("model").map(str::to_owned);
                let version = info.get("version").map(str::to_owned);
                (request.match_pattern(), response.status(), named, version)
            }
            Err(err) => (None, err.as_response_error().status_code(), None, None),
        };
        let route = route.unwrap_or_else(|| "unmatched".to_owned());
        let models = state.registry.all();
        let model = match named {
            Some(name) => models.iter().find(|served| served.info().name == name),
            None if endpoints::is_max(&route) => models.first(),
            None => None,
        }
        .map_or("", |served| served.info().name.as_str());
        state.metrics.observe_request(
            &route,
            method.as_str(),
            status,
            model,
            elapsed.as_secs_f64(),
        );
        if !model.is_empty() && endpoints::runs_a_model(&route) {
            state.metrics.observe_inference(
                model,
                version.as_deref().unwrap_or("default"),
                elapsed.as_secs_f64() * 1e6,
                queued_micros as f64,
            );
        }
        state.metrics.observe_response(status);
    }
    result
}
