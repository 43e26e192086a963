//! Prometheus metrics: requests by route, method and status, their latency, the batch sizes of
//! forward passes, and the model served. Rendered at `GET /metrics`.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::web;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::AppState;

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    batch_size: Histogram,
}

impl Metrics {
    pub fn new(model_name: &str, model_version: &str) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "max_mnist_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "max_mnist_request_duration_seconds",
                "Time from a request's arrival to its response, by route",
            )
            .buckets(vec![
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["route"],
        )?;
        let batch_size = Histogram::with_opts(
            HistogramOpts::new(
                "max_mnist_batch_size",
                "Images per forward pass of the network",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
        )?;
        let model_info = IntGaugeVec::new(
            Opts::new("max_mnist_model_info", "The model served (always 1)"),
            &["name", "version", "network"],
        )?;
        model_info
            .with_label_values(&[model_name, model_version, "MyConvNet"])
            .set(1);
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(batch_size.clone()))?;
        registry.register(Box::new(model_info))?;
        Ok(Self {
            registry,
            requests,
            latency,
            batch_size,
        })
    }

    pub fn observe_batch(&self, size: usize) {
        self.batch_size.observe(size as f64);
    }

    fn observe_request(&self, route: &str, method: &str, status: StatusCode, seconds: f64) {
        self.requests
            .with_label_values(&[route, method, status.as_str()])
            .inc();
        self.latency.with_label_values(&[route]).observe(seconds);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut text = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut text)?;
        Ok(String::from_utf8_lossy(&text).into_owned())
    }
}

/// Records every request under its route pattern (`/predictions/{model}`, not the raw path, so that
/// the number of series stays bounded); requests that match no route count as `unmatched`.
pub async fn record(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let state = request.app_data::<web::Data<AppState>>().cloned();
    let method = request.method().clone();
    let result = next.call(request).await;
    if let Some(state) = state {
        let (route, status) = match &result {
            Ok(response) => (response.request().match_pattern(), response.status()),
            Err(err) => (None, err.as_response_error().status_code()),
        };
        let route = route.unwrap_or_else(|| "unmatched".to_owned());
        state.metrics.observe_request(
            &route,
            method.as_str(),
            status,
            started.elapsed().as_secs_f64(),
        );
    }
    result
}
