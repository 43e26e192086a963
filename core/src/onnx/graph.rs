//! The checks an ONNX file passes before ONNX Runtime sees it: a `ModelProto` read with the few
//! fields that matter (everything else is skipped), every tensor it holds — initializers, and
//! tensors in node attributes, subgraphs and functions — holding exactly the data its dimensions
//! declare, and none kept outside the file. External data names a path on the server, which is
//! never opened; a declared size the file does not hold would be allocated by the runtime.

use prost::Message;

use crate::WeightsError;

#[derive(Clone, PartialEq, Message)]
pub struct ModelProto {
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    #[prost(message, repeated, tag = "20")]
    pub training_info: Vec<TrainingInfoProto>,
    #[prost(message, repeated, tag = "25")]
    pub functions: Vec<FunctionProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct OperatorSetIdProto {
    #[prost(string, tag = "1")]
    pub domain: String,
    #[prost(int64, tag = "2")]
    pub version: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "15")]
    pub sparse_initializer: Vec<SparseTensorProto>,
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ValueInfoProto {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    #[prost(string, tag = "4")]
    pub op_type: String,
    #[prost(string, tag = "7")]
    pub domain: String,
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AttributeProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    #[prost(message, optional, boxed, tag = "6")]
    pub g: Option<Box<GraphProto>>,
    #[prost(message, repeated, tag = "10")]
    pub tensors: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    pub graphs: Vec<GraphProto>,
    #[prost(message, optional, tag = "22")]
    pub sparse_tensor: Option<SparseTensorProto>,
    #[prost(message, repeated, tag = "23")]
    pub sparse_tensors: Vec<SparseTensorProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    #[prost(int32, repeated, tag = "5")]
    pub int32_data: Vec<i32>,
    #[prost(bytes = "vec", repeated, tag = "6")]
    pub string_data: Vec<Vec<u8>>,
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    #[prost(string, tag = "8")]
    pub name: String,
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
    #[prost(double, repeated, tag = "10")]
    pub double_data: Vec<f64>,
    #[prost(uint64, repeated, tag = "11")]
    pub uint64_data: Vec<u64>,
    #[prost(message, repeated, tag = "13")]
    pub external_data: Vec<StringStringEntryProto>,
    #[prost(int32, tag = "14")]
    pub data_location: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct SparseTensorProto {
    #[prost(message, optional, tag = "1")]
    pub values: Option<TensorProto>,
    #[prost(message, optional, tag = "2")]
    pub indices: Option<TensorProto>,
    #[prost(int64, repeated, tag = "3")]
    pub dims: Vec<i64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct StringStringEntryProto {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct FunctionProto {
    #[prost(message, repeated, tag = "7")]
    pub node: Vec<NodeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TrainingInfoProto {
    #[prost(message, optional, tag = "1")]
    pub initialization: Option<GraphProto>,
    #[prost(message, optional, tag = "2")]
    pub algorithm: Option<GraphProto>,
}

/// `TensorProto.DataLocation.EXTERNAL`.
const EXTERNAL: i32 = 1;
/// `TensorProto.DataType.STRING`: its size is its strings', not its dimensions'.
const STRING: i32 = 8;

/// Whether `bytes` look like an ONNX model: a protobuf that starts with a small `ir_version`
/// (field 1, a varint: `0x08 v`), as every ONNX writer puts it first, followed by another of
/// `ModelProto`'s fields. A damaged file that starts so is still claimed, so that reading it says
/// what is wrong with it as ONNX.
pub fn is_onnx(bytes: &[u8]) -> bool {
    const NEXT_FIELDS: [u8; 7] = [0x12, 0x1a, 0x22, 0x28, 0x32, 0x3a, 0x42];
    matches!(bytes, [0x08, 1..=30, next, ..] if NEXT_FIELDS.contains(next))
}

/// What the checks learnt of the graph, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphSummary {
    pub nodes: usize,
    pub initializers: usize,
}

/// Decodes the model and checks every tensor it holds.
pub fn check(bytes: &[u8]) -> Result<GraphSummary, WeightsError> {
    let model = ModelProto::decode(bytes).map_err(|err| {
        onnx_error(format!(
            "the file is not a readable ONNX model ({err}): is it complete? Export it again"
        ))
    })?;
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| onnx_error("the model holds no graph".into()))?;
    check_graph(graph)?;
    for function in &model.functions {
        function.node.iter().try_for_each(check_node)?;
    }
    for info in &model.training_info {
        for graph in info.initialization.iter().chain(&info.algorithm) {
            check_graph(graph)?;
        }
    }
    Ok(GraphSummary {
        nodes: graph.node.len(),
        initializers: graph.initializer.len(),
    })
}

fn check_graph(graph: &GraphProto) -> Result<(), WeightsError> {
    graph.initializer.iter().try_for_each(check_tensor)?;
    graph.sparse_initializer.iter().try_for_each(check_sparse)?;
    graph.node.iter().try_for_each(check_node)
}

fn check_node(node: &NodeProto) -> Result<(), WeightsError> {
    if node.op_type == "Loop" && matches!(node.domain.as_str(), "" | "ai.onnx") {
        let output = node.output.first().map_or("", String::as_str);
        return Err(onnx_error(format!(
            "the graph has a Loop (giving `{output}`): its number of iterations comes from data, so one request could hold a runner for ever; this server serves graphs without Loop (export with a fixed number of steps)"
        )));
    }
    for attribute in &node.attribute {
        attribute.t.iter().try_for_each(check_tensor)?;
        attribute.tensors.iter().try_for_each(check_tensor)?;
        attribute.sparse_tensor.iter().try_for_each(check_sparse)?;
        attribute.sparse_tensors.iter().try_for_each(check_sparse)?;
        attribute.g.iter().try_for_each(|g| check_graph(g))?;
        attribute.graphs.iter().try_for_each(check_graph)?;
    }
    Ok(())
}

fn check_sparse(sparse: &SparseTensorProto) -> Result<(), WeightsError> {
    sparse.values.iter().try_for_each(check_tensor)?;
    sparse.indices.iter().try_for_each(check_tensor)
}

/// A tensor holds its data in the file, exactly as much as its dimensions and type declare.
fn check_tensor(tensor: &TensorProto) -> Result<(), WeightsError> {
    let name = if tensor.name.is_empty() {
        "(unnamed)"
    } else {
        &tensor.name
    };
    if tensor.data_location == EXTERNAL || !tensor.external_data.is_empty() {
        let location = tensor
            .external_data
            .iter()
            .find(|entry| entry.key == "location")
            .map_or("", |entry| entry.value.as_str());
        return Err(onnx_error(format!(
            "tensor `{name}` keeps its data in another file (`{location}`), which this server never opens: save the model with its weights inside it (onnx.save_model(model, \"model.onnx\", save_as_external_data=False))"
        )));
    }
    if tensor.data_type == STRING {
        return Ok(());
    }
    let declared = declared_elements(&tensor.dims).ok_or_else(|| {
        onnx_error(format!(
            "tensor `{name}` declares dimensions {:?}, which are negative or too many elements",
            tensor.dims
        ))
    })?;
    let (element_bits, held) = layout(tensor).ok_or_else(|| {
        onnx_error(format!(
            "tensor `{name}` has data type {}, which ONNX does not define",
            tensor.data_type
        ))
    })?;
    let declared_bytes = u128::from(declared) * u128::from(element_bits) / 8;
    let held_bytes = if tensor.raw_data.is_empty() {
        u128::from(held) * u128::from(element_bits) / 8
    } else {
        tensor.raw_data.len() as u128
    };
    if declared_bytes != held_bytes {
        return Err(onnx_error(format!(
            "tensor `{name}` declares dimensions {:?} ({} bytes) but holds {held_bytes} bytes: the file is damaged or made to exhaust memory; export the model again",
            tensor.dims, declared_bytes
        )));
    }
    Ok(())
}

/// The product of the dimensions; `None` when one is negative or the product overflows.
fn declared_elements(dims: &[i64]) -> Option<u64> {
    dims.iter().try_fold(1u64, |product, &dim| {
        u64::try_from(dim)
            .ok()
            .and_then(|dim| product.checked_mul(dim))
    })
}

/// Bits per element of the tensor's type, and how many elements its typed fields hold (`None`
/// for a type ONNX does not define).
fn layout(tensor: &TensorProto) -> Option<(u64, u64)> {
    let count = |n: usize| n as u64;
    Some(match tensor.data_type {
        // FLOAT
        1 => (32, count(tensor.float_data.len())),
        // UINT8, INT8, BOOL, the float8s: one element per int32_data entry.
        2 | 3 | 9 | 17..=20 => (8, count(tensor.int32_data.len())),
        // UINT16, INT16, FLOAT16, BFLOAT16
        4 | 5 | 10 | 16 => (16, count(tensor.int32_data.len())),
        // INT32
        6 => (32, count(tensor.int32_data.len())),
        // INT64
        7 => (64, count(tensor.int64_data.len())),
        // DOUBLE
        11 => (64, count(tensor.double_data.len())),
        // UINT32, UINT64
        12 => (32, count(tensor.uint64_data.len())),
        13 => (64, count(tensor.uint64_data.len())),
        // COMPLEX64, COMPLEX128: two numbers per element.
        14 => (64, count(tensor.float_data.len() / 2)),
        15 => (128, count(tensor.double_data.len() / 2)),
        // UINT4, INT4, FLOAT4E2M1: two elements per byte (int32_data holds one per entry).
        21..=23 => (4, count(tensor.int32_data.len())),
        _ => return None,
    })
}

fn onnx_error(message: String) -> WeightsError {
    WeightsError::Onnx(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float_tensor(name: &str, dims: Vec<i64>, values: usize) -> TensorProto {
        TensorProto {
            name: name.into(),
            dims,
            data_type: 1,
            raw_data: vec![0; values * 4],
            ..TensorProto::default()
        }
    }

    fn model(initializer: Vec<TensorProto>) -> Vec<u8> {
        ModelProto {
            ir_version: 8,
            graph: Some(GraphProto {
                initializer,
                ..GraphProto::default()
            }),
            ..ModelProto::default()
        }
        .encode_to_vec()
    }

    /// A model whose graph's one node is an `If` with `branch` as its `then_branch`.
    fn with_branch(branch: GraphProto) -> Vec<u8> {
        ModelProto {
            ir_version: 8,
            graph: Some(GraphProto {
                node: vec![NodeProto {
                    op_type: "If".into(),
                    attribute: vec![AttributeProto {
                        name: "then_branch".into(),
                        g: Some(Box::new(branch)),
                        ..AttributeProto::default()
                    }],
                    ..NodeProto::default()
                }],
                ..GraphProto::default()
            }),
            ..ModelProto::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn a_tensor_holding_its_declared_data_passes() {
        let bytes = model(vec![float_tensor("w", vec![2, 3], 6)]);
        assert!(is_onnx(&bytes), "{:?}", &bytes[..4]);
        assert_eq!(check(&bytes).expect("valid").initializers, 1);
    }

    #[test]
    fn a_declared_size_the_file_does_not_hold_is_refused() {
        let bytes = model(vec![float_tensor("huge", vec![50_000, 50_000], 0)]);
        let message = check(&bytes).expect_err("refused").to_string();
        assert!(
            message.contains("`huge`") && message.contains("10000000000 bytes"),
            "{message}"
        );
        let overflow = model(vec![float_tensor("x", vec![i64::MAX, i64::MAX], 0)]);
        assert!(check(&overflow).is_err());
        let negative = model(vec![float_tensor("x", vec![-1], 0)]);
        assert!(check(&negative).is_err());
    }

    #[test]
    fn external_data_is_refused_without_opening_it() {
        let mut tensor = float_tensor("w", vec![4], 0);
        tensor.data_location = EXTERNAL;
        tensor.external_data = vec![StringStringEntryProto {
            key: "location".into(),
            value: "../../etc/shadow".into(),
        }];
        let message = check(&model(vec![tensor]))
            .expect_err("refused")
            .to_string();
        assert!(message.contains("../../etc/shadow") && message.contains("never opens"));
    }

    #[test]
    fn tensors_inside_subgraphs_are_checked_too() {
        let bytes = with_branch(GraphProto {
            initializer: vec![float_tensor("deep", vec![1_000_000], 1)],
            ..GraphProto::default()
        });
        assert!(check(&bytes)
            .expect_err("refused")
            .to_string()
            .contains("`deep`"));
    }

    #[test]
    fn a_loop_is_refused_even_in_a_subgraph() {
        let bytes = with_branch(GraphProto {
            node: vec![NodeProto {
                op_type: "Loop".into(),
                output: vec!["y".into()],
                ..NodeProto::default()
            }],
            ..GraphProto::default()
        });
        assert!(check(&bytes)
            .expect_err("refused")
            .to_string()
            .contains("Loop (giving `y`)"));
    }

    #[test]
    fn other_bytes_are_not_onnx() {
        assert!(!is_onnx(b""));
        assert!(!is_onnx(b"PK\x03\x04"));
        assert!(!is_onnx(&[0x08, 0xff, 0xff]));
        // A safetensors header of 776 bytes starts 0x08 0x03 0x00.
        assert!(!is_onnx(&[0x08, 0x03, 0x00, 0x00]));
        assert!(is_onnx(&[0x08, 0x08, 0x3a, 0x7f]));
        assert!(check(&[0x08, 0x08, 0x3a, 0x7f]).is_err());
    }
}
