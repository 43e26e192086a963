//! Serving small PyTorch models without HTTP: weights and model archives, the networks, image
//! pre-processing, explanations. The HTTP layer knows only [`Model`] and its [`ModelInfo`].

pub mod architectures;
pub mod archive;
pub mod chart;
pub mod error;
pub mod explain;
pub mod heatmap;
pub mod image_input;
pub mod image_transform;
pub mod loading;
pub mod matmul;
pub mod model;
pub mod model_settings;
pub mod normalise;
pub mod onnx;
pub mod records;
pub mod resample;
pub mod weights;

pub use architectures::{recognise, Architecture, ModelIdentity, ARCHITECTURES};
pub use error::{CoreError, InputError, WeightsError};
pub use explain::Explanation;
pub use image_input::ImageLimits;
pub use loading::{load, LoadLimits, ModelSource};
pub use model::{
    classify, explain, explain_all, Answer, ClassProbability, Classification, DefaultTarget,
    Explained, ExplanationInfo, InputKind, Model, ModelInfo, ModelInput, ModelOutput, NetworkInfo,
    OutputKind, RawInput, Work,
};
pub use model_settings::ModelSettings;
pub use records::{Field, Record};
