//! The digit classifier without HTTP: weights, MyConvNet, pre- and post-processing.

pub mod classifier;
pub mod convnet;
pub mod error;
pub mod explain;
pub mod fused;
pub mod gradient;
pub mod heatmap;
pub mod image_input;
pub mod normalise;
pub mod weights;

pub use classifier::{DigitModel, Logits, MnistClassifier, ModelInput, Prediction};
pub use error::{CoreError, InputError, WeightsError};
pub use image_input::ImageLimits;

/// Side of the square MNIST image, in pixels.
pub const IMAGE_SIDE: usize = 28;
/// Pixels of one MNIST image.
pub const IMAGE_PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;
/// The ten digits.
pub const NUM_CLASSES: usize = 10;
