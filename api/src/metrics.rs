//! Prometheus metrics: requests by route, method, status and model, their latency, the batch sizes
//! of forward passes, and the models served; and TorchServe's own series under its names, counted
//! as its frontend counts them (`ts_inference_requests_total` and the latency counters per
//! inference request, `Requests2XX/4XX/5XX` per response), so that its users' dashboards and
//! alerts keep working. Rendered at `GET /metrics`.

use actix_web::http::StatusCode;
use max_mnist_core::ModelInfo;
use prometheus::{
    CounterVec, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    batch_size: HistogramVec,
    model_info: IntGaugeVec,
    torchserve: TorchServeMetrics,
}

/// TorchServe's frontend metrics (its `ts/configs/metrics.yaml`), with its names and labels.
struct TorchServeMetrics {
    hostname: String,
    inference_requests: IntCounterVec,
    inference_latency: CounterVec,
    queue_latency: CounterVec,
    /// `Requests2XX`, `Requests4XX`, `Requests5XX`.
    responses: [IntCounterVec; 3],
}

impl TorchServeMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let per_model = ["model_name", "model_version", "hostname"];
        let inference_requests = IntCounterVec::new(
            Opts::new(
                "ts_inference_requests_total",
                "Total number of inference requests.",
            ),
            &per_model,
        )?;
        let inference_latency = CounterVec::new(
            Opts::new(
                "ts_inference_latency_microseconds",
                "Cumulative inference duration in microseconds",
            ),
            &per_model,
        )?;
        let queue_latency = CounterVec::new(
            Opts::new(
                "ts_queue_latency_microseconds",
                "Cumulative queue duration in microseconds",
            ),
            &per_model,
        )?;
        let responses = ["Requests2XX", "Requests4XX", "Requests5XX"].map(|name| {
            IntCounterVec::new(
                Opts::new(
                    name,
                    format!("{name}: responses of that class, all listeners"),
                ),
                &["Level", "Hostname"],
            )
        });
        let [ok, client, server] = responses;
        let responses = [ok?, client?, server?];
        registry.register(Box::new(inference_requests.clone()))?;
        registry.register(Box::new(inference_latency.clone()))?;
        registry.register(Box::new(queue_latency.clone()))?;
        for counter in &responses {
            registry.register(Box::new(counter.clone()))?;
        }
        Ok(Self {
            hostname: hostname(),
            inference_requests,
            inference_latency,
            queue_latency,
            responses,
        })
    }

    /// One inference request of `model` (`version` as the request named it, else "default",
    /// as TorchServe labels it).
    fn observe_inference(&self, model: &str, version: &str, micros: f64, queued_micros: f64) {
        let labels = [model, version, self.hostname.as_str()];
        self.inference_requests.with_label_values(&labels).inc();
        self.inference_latency
            .with_label_values(&labels)
            .inc_by(micros);
        self.queue_latency
            .with_label_values(&labels)
            .inc_by(queued_micros);
    }

    fn observe_response(&self, status: StatusCode) {
        let class = match status.as_u16() {
            200..=299 => 0,
            400..=499 => 1,
            500..=599 => 2,
            _ => return,
        };
        self.responses[class]
            .with_label_values(&["Host", self.hostname.as_str()])
            .inc();
    }
}

/// The machine's name, as TorchServe's `hostname` label gives it.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "Unknown".to_owned())
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
        let torchserve = TorchServeMetrics::new(&registry)?;
        Ok(Self {
            registry,
            requests,
            latency,
            batch_size,
            model_info,
            torchserve,
        })
    }

    /// Lists a model in `max_mnist_model_info`.
    pub fn add_model(&self, info: &ModelInfo) {
        self.model_info
            .with_label_values(&[&info.name, &info.version, &info.network.name])
            .set(1);
    }

    /// Takes a model out of `max_mnist_model_info` (its other series stay, as counters do).
    pub fn remove_model(&self, info: &ModelInfo) {
        let _ =
            self.model_info
                .remove_label_values(&[&info.name, &info.version, &info.network.name]);
    }

    /// The histogram of a model's forward-pass sizes.
    pub fn batch_sizes(&self, model: &str) -> Histogram {
        self.batch_size.with_label_values(&[model])
    }

    pub(crate) fn observe_request(
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

    /// One inference request of `model`, in TorchServe's series.
    pub(crate) fn observe_inference(
        &self,
        model: &str,
        version: &str,
        micros: f64,
        queued_micros: f64,
    ) {
        self.torchserve
            .observe_inference(model, version, micros, queued_micros);
    }

    /// One response, in TorchServe's `Requests2XX`/`4XX`/`5XX`.
    pub(crate) fn observe_response(&self, status: StatusCode) {
        self.torchserve.observe_response(status);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut text = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut text)?;
        Ok(String::from_utf8_lossy(&text).into_owned())
    }
}
