//! A model's expensive work — big images, big networks, explanations — queued and run on the
//! blocking pool by at most `limits.max_concurrent_decodes` runners per model. A runner takes the
//! requests one after another until the queue is empty, so under load it never sleeps between
//! them: a request costs one hand-off back to its worker, not a chain of wake-ups. Each model has
//! its own queue and runners, so one model's backlog never holds up another's requests, and the
//! memory in use stays bounded by the runners.
//!
//! Requests are not batched together: a runner that takes every request waiting makes their
//! clients answer and send again in step, and the gaps cost more than batching saves (measured in
//! BENCHMARKS.md).

use std::cell::Cell;
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use max_mnist_core::{Classification, CoreError, Explained, ExplanationInfo, Model, RawInput};
use prometheus::Histogram;
use tokio::sync::oneshot;

use crate::errors::ApiError;
use crate::inference::Instance;

/// One request's work, and where its answer goes, with the time it waited for a runner.
enum Job {
    Classify {
        instances: Vec<Instance>,
        reply: oneshot::Sender<(Duration, Result<Vec<Classification>, CoreError>)>,
    },
    Explain {
        instances: Vec<(Instance, Option<usize>)>,
        settings: ExplanationInfo,
        reply: oneshot::Sender<(Duration, Result<Vec<Explained>, CoreError>)>,
    },
}

tokio::task_local! {
    /// The time the request being handled on this task waited for runners, in microseconds,
    /// for TorchServe's `ts_queue_latency_microseconds`; set by [`measure_queue_wait`].
    static QUEUE_WAIT: Cell<u64>;
}

/// Runs `request` counting the time it waits in work queues: the future's output, and the wait.
pub async fn measure_queue_wait<F: std::future::Future>(request: F) -> (F::Output, u64) {
    QUEUE_WAIT
        .scope(Cell::new(0), async {
            let output = request.await;
            (output, QUEUE_WAIT.with(Cell::get))
        })
        .await
}

fn record_wait(waited: Duration) {
    let micros = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
    let _ = QUEUE_WAIT.try_with(|total| total.set(total.get().saturating_add(micros)));
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<(Instant, Job)>,
    runners: usize,
}

pub struct WorkQueue {
    model: Arc<dyn Model>,
    queue: Mutex<Queue>,
    max_runners: usize,
    /// Most requests waiting for a runner (TorchServe's `job_queue_size`): beyond, a 503.
    max_waiting: usize,
    /// Instances per forward pass, for `/metrics`.
    batch_sizes: Histogram,
}

impl WorkQueue {
    pub fn new(
        model: Arc<dyn Model>,
        max_runners: usize,
        max_waiting: usize,
        batch_sizes: Histogram,
    ) -> Arc<Self> {
        Arc::new(Self {
            model,
            queue: Mutex::new(Queue::default()),
            max_runners: max_runners.max(1),
            max_waiting: max_waiting.max(1),
            batch_sizes,
        })
    }

    /// Each instance's classification, in order, from one forward pass.
    pub async fn classify(
        self: &Arc<Self>,
        instances: Vec<Instance>,
    ) -> Result<Vec<Classification>, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Classify { instances, reply })?;
        let (waited, answer) = answer.await.map_err(lost)?;
        record_wait(waited);
        answer.map_err(ApiError::from)
    }

    /// Integrated Gradients for each instance: of its target, or of `settings.target`.
    pub async fn explain(
        self: &Arc<Self>,
        instances: Vec<(Instance, Option<usize>)>,
        settings: ExplanationInfo,
    ) -> Result<Vec<Explained>, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Explain {
            instances,
            settings,
            reply,
        })?;
        let (waited, answer) = answer.await.map_err(lost)?;
        record_wait(waited);
        answer.map_err(ApiError::from)
    }

    /// Requests waiting for a runner.
    pub fn pending(&self) -> usize {
        self.lock().jobs.len()
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `job`, and starts a runner when fewer than the most allowed are running; a 503 when
    /// the queue is full, as TorchServe answers then.
    fn submit(self: &Arc<Self>, job: Job) -> Result<(), ApiError> {
        let start = {
            let mut queue = self.lock();
            if queue.jobs.len() >= self.max_waiting {
                return Err(ApiError::ServiceUnavailable(format!(
                    "model `{}` has {} requests waiting for its runners, as many as its queue holds (limits.job_queue_size, TorchServe's job_queue_size): try again shortly, or raise the limit or the runners (limits.max_concurrent_decodes, default_workers_per_model)",
                    self.model.info().name,
                    queue.jobs.len()
                )));
            }
            queue.jobs.push_back((Instant::now(), job));
            let start = queue.runners < self.max_runners;
            if start {
                queue.runners += 1;
            }
            start
        };
        if start {
            let work_queue = self.clone();
            // Not awaited: each job's answer comes through its own channel.
            drop(actix_web::rt::task::spawn_blocking(move || {
                work_queue.run()
            }));
        }
        Ok(())
    }

    /// Runs the queued jobs until none is left.
    fn run(&self) {
        while let Some(job) = self.next_job() {
            // A panic loses that request's answer (its client gets a 500), never the runner.
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| self.process(job)));
        }
    }

    /// The oldest job; `None`, and one runner fewer, when none is left.
    fn next_job(&self) -> Option<(Instant, Job)> {
        let mut queue = self.lock();
        let job = queue.jobs.pop_front();
        if job.is_none() {
            queue.runners -= 1;
        }
        job
    }

    fn process(&self, (queued, job): (Instant, Job)) {
        let model = self.model.as_ref();
        let waited = queued.elapsed();
        match job {
            Job::Classify { instances, reply } => {
                let _ = reply.send((waited, classify_with(model, &instances, &self.batch_sizes)));
            }
            Job::Explain {
                instances,
                settings,
                reply,
            } => {
                let _ = reply.send((waited, explain_with(model, &instances, settings)));
            }
        }
    }
}

fn lost(_: oneshot::error::RecvError) -> ApiError {
    ApiError::Internal("the model's task ended without an answer: try again".into())
}

/// Explains each instance on the calling thread.
fn explain_with(
    model: &dyn Model,
    instances: &[(Instance, Option<usize>)],
    settings: ExplanationInfo,
) -> Result<Vec<Explained>, CoreError> {
    let raws: Vec<(RawInput<'_>, Option<usize>)> = instances
        .iter()
        .map(|(instance, target)| (instance.raw(), *target))
        .collect();
    max_mnist_core::explain_all(model, &raws, settings)
}

/// Classifies `instances` in one forward pass on the calling thread, counting the batch.
pub fn classify_with(
    model: &dyn Model,
    instances: &[Instance],
    batch_sizes: &Histogram,
) -> Result<Vec<Classification>, CoreError> {
    batch_sizes.observe(instances.len() as f64);
    let raws: Vec<RawInput<'_>> = instances.iter().map(Instance::raw).collect();
    max_mnist_core::classify(model, &raws)
}
