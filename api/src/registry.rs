//! The models served, by name, each in one or more versions (one is its default, as in
//! TorchServe). The first one registered also answers the MAX routes (`/model/…`).
//!
//! The list is replaced as a whole when models come or go, and a request holds its model by an
//! `Arc`, so requests in flight finish on the model they started with.

use std::sync::{Arc, RwLock};

use max_mnist_core::{Model, ModelInfo};
use prometheus::Histogram;

use crate::errors::ApiError;
use crate::metrics::Metrics;
use crate::work_queue::{DecodeBudget, WorkQueue};

/// A model loaded from a file, ready to serve.
pub struct LoadedModel {
    pub model: Arc<dyn Model>,
    /// The file it came from, as TorchServe's management API names it (`mnist.mar`).
    pub url: String,
    /// Named at start-up, rather than registered through the management API.
    pub loaded_at_startup: bool,
}

/// A model being served, with what serving it needs.
pub struct ServedModel {
    pub model: Arc<dyn Model>,
    pub url: String,
    pub loaded_at_startup: bool,
    /// When it began serving, RFC 3339.
    pub serving_since: String,
    /// Runs this model's expensive work (big images, big networks, explanations).
    pub work_queue: Arc<WorkQueue>,
    /// Instances per forward pass.
    pub batch_sizes: Histogram,
    registration: RwLock<Registration>,
}

impl ServedModel {
    pub fn info(&self) -> &ModelInfo {
        self.model.info()
    }

    /// What TorchServe's management API was told about this model, as it stands now.
    pub fn registration(&self) -> Registration {
        match self.registration.read() {
            Ok(registration) => registration.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Records TorchServe's scaling request: the minimum and maximum workers it asked for.
    pub fn set_workers(&self, min: usize, max: usize) {
        let mut registration = match self.registration.write() {
            Ok(registration) => registration,
            Err(poisoned) => poisoned.into_inner(),
        };
        registration.min_workers = Some(min);
        registration.max_workers = Some(max);
    }
}

/// What TorchServe's management API (or its model snapshot) said about a model, kept to be
/// reported back as TorchServe's describe reports it. `None` where nothing was said: the
/// server's own value is reported then. These configure TorchServe's Python workers; here they
/// are recorded, and the runners, batching and limits stay the server's settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registration {
    pub min_workers: Option<usize>,
    pub max_workers: Option<usize>,
    pub batch_size: Option<usize>,
    /// Milliseconds.
    pub max_batch_delay: Option<u64>,
    /// Seconds.
    pub response_timeout: Option<u64>,
    /// Seconds.
    pub startup_timeout: Option<u64>,
    /// TorchServe's `runtime` (`python`, `python3`, `LSP`).
    pub runtime: Option<String>,
}

pub struct Registry {
    models: RwLock<Snapshot>,
    /// Runners of each model's expensive work.
    runners: usize,
    /// Requests each model's work queue holds.
    queue_size: usize,
    /// The decoding memory every model's runners share.
    budget: Arc<DecodeBudget>,
}

/// The models served, replaced as a whole when one comes or goes. A name may be served in several
/// versions, as TorchServe serves them; its default version is the first of them in `every`.
#[derive(Clone, Default)]
struct Snapshot {
    /// Every version of every model, in the order they were registered (defaults first).
    every: Arc<Vec<Arc<ServedModel>>>,
    /// The default version of each model, in the order the models were registered.
    defaults: Arc<Vec<Arc<ServedModel>>>,
}

impl Snapshot {
    fn new(every: Vec<Arc<ServedModel>>) -> Self {
        let mut defaults: Vec<Arc<ServedModel>> = Vec::new();
        for served in &every {
            if !defaults.iter().any(|d| d.info().name == served.info().name) {
                defaults.push(served.clone());
            }
        }
        Self {
            every: Arc::new(every),
            defaults: Arc::new(defaults),
        }
    }
}

impl Registry {
    pub fn new(runners: usize, queue_size: usize, budget: DecodeBudget) -> Self {
        Self {
            models: RwLock::new(Snapshot::default()),
            runners,
            queue_size,
            budget: Arc::new(budget),
        }
    }

    fn snapshot(&self) -> Snapshot {
        match self.models.read() {
            Ok(models) => models.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Every model served (its default version), in the order they were registered.
    pub fn all(&self) -> Arc<Vec<Arc<ServedModel>>> {
        self.snapshot().defaults
    }

    /// Every version of the model `name`, the default first (none when it is not served).
    pub fn versions(&self, name: &str) -> Vec<Arc<ServedModel>> {
        self.snapshot()
            .every
            .iter()
            .filter(|served| served.info().name == name)
            .cloned()
            .collect()
    }

    /// Runners of each model's expensive work: TorchServe's workers.
    pub fn runners(&self) -> usize {
        self.runners
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Snapshot> {
        match self.models.write() {
            Ok(models) => models,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Serves `loaded` too (after the others), at once, and lists it in `metrics`; a 409 when
    /// this version of its name is served already, and then nothing changes. Another version of
    /// a served name is added beside it, the default staying the default (as TorchServe's
    /// `ModelVersionedRefs.addVersionModel` does).
    pub fn add(
        &self,
        loaded: LoadedModel,
        metrics: &Metrics,
    ) -> Result<Arc<ServedModel>, ApiError> {
        self.add_registered(loaded, Registration::default(), metrics)
    }

    /// [`Registry::add`], with what its registration said about it.
    pub fn add_registered(
        &self,
        loaded: LoadedModel,
        registration: Registration,
        metrics: &Metrics,
    ) -> Result<Arc<ServedModel>, ApiError> {
        let mut models = self.write();
        let info = loaded.model.info();
        if let Some(served) = models
            .every
            .iter()
            .find(|served| served.info().name == info.name && served.info().version == info.version)
        {
            return Err(already_registered(&info.name, served));
        }
        metrics.add_model(info);
        let batch_sizes = metrics.batch_sizes(&info.name);
        let served = Arc::new(ServedModel {
            work_queue: WorkQueue::new(
                loaded.model.clone(),
                self.runners,
                self.queue_size,
                self.budget.clone(),
                batch_sizes.clone(),
            ),
            batch_sizes,
            model: loaded.model,
            url: loaded.url,
            loaded_at_startup: loaded.loaded_at_startup,
            serving_since: jiff::Timestamp::now().to_string(),
            registration: RwLock::new(registration),
        });
        let mut next = models.every.as_ref().clone();
        next.push(served.clone());
        *models = Snapshot::new(next);
        Ok(served)
    }

    /// Stops serving the model `name` (of `version`, when one is given; else its default): new
    /// requests no longer find it, and those in flight finish on it. A 404 when it is not served;
    /// a 403 for a default version while other versions are served (TorchServe's
    /// `ModelVersionedRefs.removeVersionModel`: make another one the default first).
    pub fn remove(
        &self,
        name: &str,
        version: Option<&str>,
        metrics: &Metrics,
    ) -> Result<Arc<ServedModel>, ApiError> {
        let mut models = self.write();
        let removed = find(&models.every, name, version)?;
        let others: Vec<&str> = models
            .every
            .iter()
            .filter(|served| served.info().name == name && !Arc::ptr_eq(served, &removed))
            .map(|served| served.info().version.as_str())
            .collect();
        let is_default = models
            .defaults
            .iter()
            .any(|served| Arc::ptr_eq(served, &removed));
        if let (true, Some(other)) = (is_default, others.first()) {
            return Err(ApiError::Forbidden(format!(
                "version {} is the default version of model `{name}`, which is also served as version {}: make another the default first (PUT /models/{name}/{other}/set-default)",
                removed.info().version,
                others.join(", ")
            )));
        }
        metrics.remove_model(removed.info());
        let next: Vec<_> = models
            .every
            .iter()
            .filter(|served| !Arc::ptr_eq(served, &removed))
            .cloned()
            .collect();
        *models = Snapshot::new(next);
        Ok(removed)
    }

    /// Makes `version` the default version of the model `name`: requests that name no version
    /// get it from now on. A 404 when either is not served.
    pub fn set_default(&self, name: &str, version: &str) -> Result<Arc<ServedModel>, ApiError> {
        let mut models = self.write();
        let chosen = find(&models.every, name, Some(version))?;
        let mut next = models.every.as_ref().clone();
        let first = next.iter().position(|served| served.info().name == name);
        let at = next.iter().position(|served| Arc::ptr_eq(served, &chosen));
        if let (Some(first), Some(at)) = (first, at) {
            let moved = next.remove(at);
            next.insert(first, moved);
        }
        *models = Snapshot::new(next);
        Ok(chosen)
    }

    /// The model the MAX routes answer with: the first registered.
    pub fn first(&self) -> Option<Arc<ServedModel>> {
        self.all().first().cloned()
    }

    /// The model named `name` (of `version`, when one is asked for, else its default version), or
    /// a 404 listing them all.
    pub fn resolve(&self, name: &str, version: Option<&str>) -> Result<Arc<ServedModel>, ApiError> {
        find(&self.snapshot().every, name, version)
    }
}

fn find(
    models: &[Arc<ServedModel>],
    name: &str,
    version: Option<&str>,
) -> Result<Arc<ServedModel>, ApiError> {
    let named: Vec<&Arc<ServedModel>> = models
        .iter()
        .filter(|served| served.info().name == name)
        .collect();
    let Some(default) = named.first() else {
        return Err(ApiError::NotFound(format!(
            "model `{name}` is not served here; {}",
            served_list(models)
        )));
    };
    let Some(version) = version else {
        return Ok((*default).clone());
    };
    named
        .iter()
        .find(|served| served.info().version == version)
        .map(|served| (*served).clone())
        .ok_or_else(|| {
            let versions: Vec<&str> = named
                .iter()
                .map(|served| served.info().version.as_str())
                .collect();
            ApiError::NotFound(format!(
                "model `{name}` has no version `{version}`; it is served as version {}",
                versions.join(", ")
            ))
        })
}

/// The 409 for a second model of one name and version.
pub fn already_registered(name: &str, served: &ServedModel) -> ApiError {
    ApiError::Conflict(format!(
        "model `{name}` is already registered in this version ({}, from {}): unregister it first, or register this one under another model_name",
        served.info().version,
        served.url
    ))
}

pub(crate) const NO_MODEL: &str = "this server serves no model at the moment: register one with the management API's POST /models?url=FILE.mar (the archive in the model store, e.g. `curl -X POST \"http://127.0.0.1:8081/models?url=mnist.mar\"`), or start with --models NAME=FILE";

/// "this server serves `mnist` (version 1.0) and `max` (version 1)".
fn served_list(models: &[Arc<ServedModel>]) -> String {
    if models.is_empty() {
        return NO_MODEL.into();
    }
    let names: Vec<String> = models
        .iter()
        .map(|served| {
            format!(
                "`{}` (version {})",
                served.info().name,
                served.info().version
            )
        })
        .collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => {
            format!("this server serves {} and {last}", rest.join(", "))
        }
        _ => format!("this server serves {}", names.concat()),
    }
}
