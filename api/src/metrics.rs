//! Prometheus metrics: requests by route, method, status and model, their latency, the batch sizes
//! of forward passes, and the models served. Rendered at `GET /metrics`.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::web;
use max_mnist_core::ModelInfo;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::AppState;

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    batch_size: HistogramVec,
    model_info: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "max_mnist_requests_total",
                "HTTP requests by route, method, status and model (empty for routes of no model)",
            ),
            &["route", "method", "status", "model"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "max_mnist_request_duration_seconds",
                "Time from a request's arrival to its response, by route and model",
            )
            .buckets(vec![
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["route", "model"],
        )?;
        let batch_size = HistogramVec::new(
            HistogramOpts::new(
                "max_mnist_batch_size",
                "Instances per forward pass of a model's network",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
            &["model"],
        )?;
        let model_info = IntGaugeVec::new(
            Opts::new("max_mnist_model_info", "The models served (always 1)"),
            &["name", "version", "network"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(batch_size.clone()))?;
        registry.register(Box::new(model_info.clone()))?;
        Ok(Self {
            registry,
            requests,
            latency,
            batch_size,
            model_info,
        })
    }

    /// Lists a model in `max_mnist_model_info`.
    pub fn add_model(&self, info: &ModelInfo) {
        self.model_info
            .with_label_values(&[&info.name, &info.version, info.architecture.name()])
            .set(1);
    }

    /// Takes a model out of `max_mnist_model_info` (its other series stay, as counters do).
    pub fn remove_model(&self, info: &ModelInfo) {
        let _ = self.model_info.remove_label_values(&[
            &info.name,
            &info.version,
            info.architecture.name(),
        ]);
    }

    /// The histogram of a model's forward-pass sizes.
    pub fn batch_sizes(&self, model: &str) -> Histogram {
        self.batch_size.with_label_values(&[model])
    }

    fn observe_request(
        &self,
        route: &str,
        method: &str,
        status: StatusCode,
        model: &str,
        seconds: f64,
    ) {
        self.requests
            .with_label_values(&[route, method, status.as_str(), model])
            .inc();
        self.latency
            .with_label_values(&[route, model])
            .observe(seconds);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut text = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut text)?;
        Ok(String::from_utf8_lossy(&text).into_owned())
    }
}

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
    let result = next.call(request).await;
    if let Some(state) = state {
        let (route, status, named) = match &result {
            Ok(response) => {
                let request = response.request();
                let named = request.match_info().get("model").map(str::to_owned);
                (request.match_pattern(), response.status(), named)
            }
            Err(err) => (None, err.as_response_error().status_code(), None),
        };
        let route = route.unwrap_or_else(|| "unmatched".to_owned());
        let models = state.registry.all();
        let model = match named {
            Some(name) => models.iter().find(|served| served.info().name == name),
            None if route.starts_with("/model/") => models.first(),
            None => None,
        }
        .map_or("", |served| served.info().name.as_str());
        state.metrics.observe_request(
            &route,
            method.as_str(),
            status,
            model,
            started.elapsed().as_secs_f64(),
        );
    }
    result
}
