use std::path::PathBuf;

/// Why an uploaded image could not become a model input. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("the upload is empty: send an image file (PNG, JPEG, GIF, BMP, WebP or TIFF)")]
    Empty,
    #[error(
        "the upload is not an image in a supported format: send PNG, JPEG, GIF, BMP, WebP or TIFF"
    )]
    UnrecognisedFormat,
    #[error("the upload is {0}, not a picture made of pixels: export or screenshot it as PNG and send that")]
    NotRaster(&'static str),
    #[error("the image could not be decoded ({0}): send a complete, valid image file")]
    Undecodable(String),
    #[error("the image is {width}×{height} pixels, more than the limit of {limit} pixels (setting limits.max_image_pixels): send a smaller image")]
    TooManyPixels { width: u32, height: u32, limit: u64 },
    #[error("the image is {width}×{height} pixels: send an image with at least one pixel")]
    ZeroSize { width: u32, height: u32 },
    #[error("the image is {width}×{height} pixels, a side longer than the limit of {limit} (setting limits.max_image_side): send a smaller image")]
    SideTooLong { width: u32, height: u32, limit: u32 },
    #[error("a numeric instance has {found} values; send 784 (shape [28,28], [1,28,28] or [784])")]
    TensorSize { found: usize },
    #[error("a numeric instance holds {value}; send intensities in 0..1 (or 0..255), finite")]
    TensorValue { value: f64 },
    #[error("decoding the image would need more than {limit} bytes of memory (setting limits.max_decoder_bytes): send a smaller image")]
    DecoderMemory { limit: u64 },
}

/// Why a weights file could not be loaded. Each message names the problem.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("cannot read the weights file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a PyTorch checkpoint (legacy or zip) nor a safetensors file")]
    UnknownFormat { path: PathBuf },
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    #[error("truncated checkpoint: {0}")]
    Truncated(String),
    #[error(
        "the state dict has no tensor `{0}`; is this a MyConvNet (MAX PyTorch MNIST) checkpoint?"
    )]
    MissingKey(String),
    #[error("the state dict has an unexpected tensor `{0}`; is this a MyConvNet (MAX PyTorch MNIST) checkpoint?")]
    UnexpectedKey(String),
    #[error("tensor `{name}` has shape {found:?}, MyConvNet needs {expected:?}")]
    WrongShape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("tensor `{name}` has dtype {found}, MyConvNet needs floating-point weights")]
    WrongDtype { name: String, found: String },
    #[error("cannot build a tensor: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// Everything `core` can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error("inference failed: {0}")]
    Inference(#[from] candle_core::Error),
}
