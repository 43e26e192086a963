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
    #[error("a numeric instance has {found} values; send {expected} (shape {shapes})")]
    TensorSize {
        found: usize,
        expected: usize,
        shapes: String,
    },
    #[error("a numeric instance holds {value}; send intensities in 0..1 (or 0..255), finite")]
    TensorValue { value: f64 },
    #[error("a numeric instance holds {value}; send finite numbers")]
    NotFinite { value: f64 },
    #[error("this model takes {expected}, not {found}")]
    WrongKind {
        expected: &'static str,
        found: &'static str,
    },
    #[error("column `{column}`: {problem}")]
    Field { column: String, problem: String },
    #[error("no `{column}`: {hint}")]
    MissingColumn { column: String, hint: String },
    #[error("the CSV {0}")]
    Csv(String),
    #[error("more than {limit} rows (setting limits.max_instances): split the CSV")]
    TooManyRows { limit: usize },
    /// One instance's problem in a request of several.
    #[error("{what} {index}: {source}")]
    At {
        /// `row` (numbered from 1, as in a CSV) or `instance` (from 0, as KServe numbers them).
        what: &'static str,
        index: usize,
        source: Box<InputError>,
    },
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
    #[error("the file is not a PyTorch checkpoint (legacy or zip), a safetensors file, an ONNX model or a TorchServe .mar archive")]
    UnknownFormat,
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    #[error("truncated checkpoint: {0}")]
    Truncated(String),
    #[error("the state dict is none of the networks this server runs.\nIt holds: {found}.\nServed: {served}")]
    UnknownArchitecture { found: String, served: String },
    #[error("tensor `{name}` has shape {found:?}, {architecture} needs {expected:?}")]
    WrongShape {
        architecture: &'static str,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("tensor `{name}` has dtype {found}; floating-point weights are needed")]
    WrongDtype { name: String, found: String },
    #[error("ONNX model: {0}")]
    Onnx(String),
    #[error("model settings {0}")]
    Settings(String),
    #[error("this is a TorchScript file, which would need PyTorch to run: export the network to ONNX instead, with `torch.onnx.export(model, example, \"model.onnx\", dynamic_axes={{\"input\": {{0: \"batch\"}}}})`, and serve model.onnx (or a .mar made with --serialized-file model.onnx)")]
    TorchScript,
    #[error("model archive: {0}")]
    Archive(String),
    #[error("{what} is {size} bytes, more than the limit of {limit} (setting limits.max_model_bytes): check the file, or raise the limit")]
    TooLarge { what: String, size: u64, limit: u64 },
    #[error("cannot build a tensor: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// Everything `core` can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The client's instance cannot be used.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The client asked for something the model cannot give: a class it does not have, a step
    /// count out of range.
    #[error("{0}")]
    Argument(String),
    /// The client asked for something this model does not do, such as explaining a network whose
    /// gradient the server cannot compute.
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error("inference failed: {0}")]
    Inference(#[from] candle_core::Error),
    #[error("cannot encode the picture: {0}")]
    Encoding(String),
    /// ONNX Runtime refused to run the graph.
    #[error("ONNX Runtime failed: {0}")]
    Engine(String),
    /// A bug.
    #[error("{0}")]
    Internal(String),
}
