//! One thing to classify, as a protocol received it: what the routes read and the work queue
//! carries to a model.

use actix_web::web::Bytes;
use max_mnist_core::{RawInput, Record};

/// One thing to classify, as a protocol received it.
#[derive(Debug, Clone)]
pub enum Instance {
    /// An encoded file (PNG, JPEG, …).
    File(Bytes),
    /// Numbers, row-major.
    Tensor(Vec<f64>),
    /// Named fields: a CSV row, a JSON object.
    Record(Record),
}

impl Instance {
    pub fn raw(&self) -> RawInput<'_> {
        match self {
            Self::File(bytes) => RawInput::File(bytes),
            Self::Tensor(values) => RawInput::Tensor(values),
            Self::Record(record) => RawInput::Record(record),
        }
    }
}
