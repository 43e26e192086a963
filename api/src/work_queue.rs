//! A model's expensive work — big images, big networks, explanations — queued and run on the
//! blocking pool by at most `limits.runners_per_model` runners per model. A runner takes the
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
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use max_mnist_core::{
    Classification, CoreError, Explained, ExplanationInfo, Model, RawInput, Work,
};
use prometheus::Histogram;
use tokio::sync::oneshot;

use crate::errors::ApiError;
use crate::instance::Instance;

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

/// A job waiting for a runner: since when, and the most memory decoding its images may take
/// (what it draws from the budget).
struct Queued {
    since: Instant,
    decoded_bytes: u64,
    job: Job,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Queued>,
    runners: usize,
}

pub struct WorkQueue {
    model: Arc<dyn Model>,
    queue: Mutex<Queue>,
    max_runners: usize,
    /// Most requests waiting for a runner (TorchServe's `job_queue_size`): beyond, a 503.
    max_waiting: usize,
    /// The decoding memory all models' runners share.
    budget: Arc<DecodeBudget>,
    /// Instances per forward pass, for `/metrics`.
    batch_sizes: Histogram,
}

impl WorkQueue {
    pub fn new(
        model: Arc<dyn Model>,
        max_runners: usize,
        max_waiting: usize,
        budget: Arc<DecodeBudget>,
        batch_sizes: Histogram,
    ) -> Arc<Self> {
        Arc::new(Self {
            model,
            queue: Mutex::new(Queue::default()),
            max_runners: max_runners.max(1),
            max_waiting: max_waiting.max(1),
            budget,
            batch_sizes,
        })
    }

    /// Each instance's classification, in order, from one forward pass; `work` is what
    /// [`Model::work`] says of them.
    pub async fn classify(
        self: &Arc<Self>,
        instances: Vec<Instance>,
        work: Work,
    ) -> Result<Vec<Classification>, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Classify { instances, reply }, work)?;
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
        let raws: Vec<RawInput<'_>> = instances.iter().map(|(i, _)| i.raw()).collect();
        let work = self.model.work(&raws);
        let (reply, answer) = oneshot::channel();
        self.submit(
            Job::Explain {
                instances,
                settings,
                reply,
            },
            work,
        )?;
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
    fn submit(self: &Arc<Self>, job: Job, work: Work) -> Result<(), ApiError> {
        let start = {
            let mut queue = self.lock();
            if queue.jobs.len() >= self.max_waiting {
                return Err(ApiError::ServiceUnavailable(format!(
                    "model `{}` has {} requests waiting for its runners, as many as its queue holds (limits.job_queue_size, TorchServe's job_queue_size): try again shortly, or raise the limit or the runners (limits.runners_per_model, default_workers_per_model)",
                    self.model.info().name,
                    queue.jobs.len()
                )));
            }
            let decoded_bytes = work.pixels.saturating_mul(DECODED_BYTES_PER_PIXEL);
            queue.jobs.push_back(Queued {
                since: Instant::now(),
                decoded_bytes,
                job,
            });
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
    fn next_job(&self) -> Option<Queued> {
        let mut queue = self.lock();
        let job = queue.jobs.pop_front();
        if job.is_none() {
            queue.runners -= 1;
        }
        job
    }

    fn process(
        &self,
        Queued {
            since,
            decoded_bytes,
            job,
        }: Queued,
    ) {
        let model = self.model.as_ref();
        let _decoding = self.budget.take(decoded_bytes);
        let waited = since.elapsed();
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

/// What a decoder and the grey conversion after it allocate per pixel, at most: RGBA at 16 bits
/// (8 bytes), then one `f32` plane and one byte plane.
const DECODED_BYTES_PER_PIXEL: u64 = 13;

/// Memory for image decoding, shared by every runner of every model: a runner takes a big
/// image's share before decoding it, and waits while others hold it, so the worst case is the
/// budget, whatever the number of runners. A share larger than the whole budget takes all of it.
pub struct DecodeBudget {
    total: u64,
    free: Mutex<u64>,
    returned: Condvar,
}

impl DecodeBudget {
    pub fn new(total: u64) -> Self {
        Self {
            total: total.max(1),
            free: Mutex::new(total.max(1)),
            returned: Condvar::new(),
        }
    }

    /// Takes `bytes` (at most the whole budget), waiting until they are free; they go back when
    /// the share is dropped. Nothing is taken for work that decodes nothing.
    pub fn take(&self, bytes: u64) -> Option<Share<'_>> {
        let bytes = bytes.min(self.total);
        if bytes == 0 {
            return None;
        }
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free < bytes {
            free = self.returned.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= bytes;
        Some(Share {
            budget: self,
            bytes,
        })
    }

    /// Bytes not taken now.
    pub fn free(&self) -> u64 {
        *self.free.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A runner's part of the [`DecodeBudget`], returned when dropped (a panic included).
pub struct Share<'a> {
    budget: &'a DecodeBudget,
    bytes: u64,
}

impl Drop for Share<'_> {
    fn drop(&mut self) {
        let mut free = self.budget.free.lock().unwrap_or_else(|p| p.into_inner());
        *free += self.bytes;
        self.budget.returned.notify_all();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_bounds_what_runners_hold_at_once() {
        let budget = Arc::new(DecodeBudget::new(100));
        let held = Arc::new(Mutex::new((0u64, 0u64)));
        std::thread::scope(|scope| {
            for _ in 0..8 {
                let (budget, held) = (budget.clone(), held.clone());
                scope.spawn(move || {
                    for _ in 0..20 {
                        let _share = budget.take(60);
                        let mut now = held.lock().expect("lock");
                        now.0 += 60;
                        now.1 = now.1.max(now.0);
                        drop(now);
                        std::thread::sleep(std::time::Duration::from_micros(200));
                        held.lock().expect("lock").0 -= 60;
                    }
                });
            }
        });
        assert_eq!(
            held.lock().expect("lock").1,
            60,
            "two shares of 60 never overlap"
        );
        assert_eq!(budget.free(), 100);
        // A share larger than the budget takes all of it, and nothing is taken for no pixels.
        let all = budget.take(1_000);
        assert_eq!(budget.free(), 0);
        drop(all);
        assert!(budget.take(0).is_none());
        assert_eq!(budget.free(), 100);
    }
}
