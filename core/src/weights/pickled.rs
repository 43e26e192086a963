//! PyTorch checkpoints written by `torch.save`: the legacy format (PyTorch < 1.6) and the zip format.
//!
//! Both pickle the state dict with tensors as `_rebuild_tensor_v2(persistent_id, offset, size,
//! stride, …)`, where the persistent id `('storage', FloatStorage, key, location, numel)` names a
//! storage. They differ in where storages live: the legacy file is five pickles (magic number,
//! protocol version, system info, state dict, sorted storage keys) followed by each storage as an
//! 8-byte little-endian element count and raw little-endian data; the zip archive holds
//! `…/data.pkl` and one raw file `…/data/{key}` per storage.
//!
//! candle's `pickle::Stack` parses the pickles. Its own tensor extraction is not used: it indexes
//! the pickled tuples without checking their length, and we must refuse a malformed file cleanly.

use std::collections::HashMap;
use std::io::{Cursor, Read};

use candle_core::pickle::{Object, Stack};
use candle_core::{DType, Device, Tensor};

use crate::WeightsError;

/// The legacy format's first pickle: protocol 2, the long 0x1950a86a20f9469cfc6c, STOP.
/// Compared as bytes: candle's pickle reader wraps a long that does not fit in 64 bits.
const LEGACY_MAGIC_PICKLE: [u8; 15] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
];
const LEGACY_PROTOCOL_VERSION: i64 = 1001;
/// No pickle of a MyConvNet-sized state dict comes near this; it bounds what a zip entry may claim.
const MAX_PICKLE_BYTES: u64 = 16 << 20;

pub fn is_legacy_checkpoint(bytes: &[u8]) -> bool {
    bytes.starts_with(&LEGACY_MAGIC_PICKLE)
}

/// Where one tensor of the state dict takes its values from.
struct TensorRef {
    name: String,
    storage_key: String,
    dtype: DType,
    storage_numel: usize,
    offset: usize,
    size: Vec<usize>,
    stride: Vec<usize>,
}

pub fn read_legacy(bytes: &[u8]) -> Result<HashMap<String, Tensor>, WeightsError> {
    let mut cursor = Cursor::new(bytes);
    cursor.set_position(LEGACY_MAGIC_PICKLE.len() as u64);
    let version = read_pickle(&mut cursor, "the protocol version")?;
    if as_i64(&version) != Some(LEGACY_PROTOCOL_VERSION) {
        return Err(WeightsError::Malformed(format!(
            "legacy protocol version {version:?}, expected {LEGACY_PROTOCOL_VERSION}"
        )));
    }
    let sys_info = read_pickle(&mut cursor, "the system info")?;
    if dict_get(&sys_info, "little_endian") == Some(&Object::Bool(false)) {
        return Err(WeightsError::Malformed(
            "the checkpoint was saved on a big-endian machine; re-save it on a little-endian one"
                .into(),
        ));
    }
    let refs = tensor_refs(read_pickle(&mut cursor, "the state dict")?)?;
    let keys = string_list(read_pickle(&mut cursor, "the storage keys")?)?;

    let mut storages = HashMap::with_capacity(keys.len());
    for key in keys {
        let tensor = refs.iter().find(|r| r.storage_key == key).ok_or_else(|| {
            WeightsError::Malformed(format!("storage `{key}` is used by no tensor"))
        })?;
        let numel_bytes = take(&mut cursor, 8, &key)?;
        let numel = numel_bytes
            .try_into()
            .map(u64::from_le_bytes)
            .map_err(|_| {
                WeightsError::Truncated(format!("storage `{key}` has no element count"))
            })?;
        if numel != tensor.storage_numel as u64 {
            return Err(WeightsError::Malformed(format!(
                "storage `{key}` holds {numel} elements, the state dict says {}",
                tensor.storage_numel
            )));
        }
        let len = storage_bytes(tensor)?;
        storages.insert(key.clone(), take(&mut cursor, len, &key)?.to_vec());
    }
    let trailing = bytes.len() as u64 - cursor.position();
    if trailing > 0 {
        return Err(WeightsError::Malformed(format!(
            "{trailing} unexpected bytes after the last storage"
        )));
    }
    build_tensors(refs, &storages)
}

pub fn read_zip(bytes: &[u8]) -> Result<HashMap<String, Tensor>, WeightsError> {
    let zip_error =
        |err: zip::result::ZipError| WeightsError::Malformed(format!("zip archive: {err}"));
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(zip_error)?;
    let pickle_name = archive
        .file_names()
        .filter_map(Result::ok)
        .find(|name| name.ends_with("data.pkl"))
        .map(|name| name.into_owned())
        .ok_or_else(|| WeightsError::Malformed("the zip archive has no data.pkl".into()))?;
    let prefix = pickle_name.trim_end_matches("data.pkl").to_owned();

    let mut pickle = Vec::new();
    archive
        .by_name(&pickle_name)
        .map_err(zip_error)?
        .take(MAX_PICKLE_BYTES)
        .read_to_end(&mut pickle)
        .map_err(|err| WeightsError::Malformed(format!("{pickle_name}: {err}")))?;
    let refs = tensor_refs(read_pickle(&mut Cursor::new(&pickle[..]), "data.pkl")?)?;

    let mut storages = HashMap::new();
    for tensor in &refs {
        if storages.contains_key(&tensor.storage_key) {
            continue;
        }
        let entry_name = format!("{prefix}data/{}", tensor.storage_key);
        let len = storage_bytes(tensor)?;
        let entry = archive
            .by_name(&entry_name)
            .map_err(|err| WeightsError::Malformed(format!("{entry_name}: {err}")))?;
        // The pickle's element count is not trusted with an allocation: the entry's size bounds it.
        let mut data = Vec::with_capacity(len.min(usize::try_from(entry.size()).unwrap_or(0)));
        entry
            .take(len as u64)
            .read_to_end(&mut data)
            .map_err(|err| WeightsError::Malformed(format!("{entry_name}: {err}")))?;
        if data.len() < len {
            return Err(WeightsError::Truncated(format!(
                "storage `{}` needs {len} bytes, {entry_name} holds {}",
                tensor.storage_key,
                data.len()
            )));
        }
        storages.insert(tensor.storage_key.clone(), data);
    }
    build_tensors(refs, &storages)
}

fn read_pickle(cursor: &mut Cursor<&[u8]>, what: &str) -> Result<Object, WeightsError> {
    let mut stack = Stack::empty();
    let parsed = loop {
        refuse_overlong_string(cursor, what)?;
        match stack.read(cursor) {
            Ok(false) => {}
            Ok(true) => break stack.finalize(),
            Err(err) => break Err(err),
        }
    };
    parsed.map_err(|err| {
        if cursor.position() >= cursor.get_ref().len() as u64 {
            WeightsError::Truncated(format!("the file ends inside {what} ({err})"))
        } else {
            WeightsError::Malformed(format!("cannot parse {what}: {err}"))
        }
    })
}

/// candle's reader allocates a BINUNICODE string's declared length before reading it: a few bytes
/// declaring 4 GiB would take 4 GiB. Found by `fuzz/fuzz_targets/checkpoint.rs`.
fn refuse_overlong_string(cursor: &Cursor<&[u8]>, what: &str) -> Result<(), WeightsError> {
    const BINUNICODE: u8 = b'X';
    let rest = cursor
        .get_ref()
        .get(usize::try_from(cursor.position()).unwrap_or(usize::MAX)..)
        .unwrap_or_default();
    if let Some((&BINUNICODE, after)) = rest.split_first() {
        if let Some((len, text)) = after.split_first_chunk::<4>() {
            let len = u32::from_le_bytes(*len) as usize;
            if len > text.len() {
                return Err(WeightsError::Truncated(format!(
                    "{what} declares a {len}-byte string, but only {} bytes follow",
                    text.len()
                )));
            }
        }
    }
    Ok(())
}

fn take<'a>(
    cursor: &mut Cursor<&'a [u8]>,
    len: usize,
    key: &str,
) -> Result<&'a [u8], WeightsError> {
    let bytes: &'a [u8] = cursor.get_ref();
    let start = usize::try_from(cursor.position()).unwrap_or(usize::MAX);
    let slice = start
        .checked_add(len)
        .and_then(|end| bytes.get(start..end))
        .ok_or_else(|| {
            WeightsError::Truncated(format!(
                "storage `{key}` needs {len} more bytes, the file has {}",
                bytes.len().saturating_sub(start)
            ))
        })?;
    cursor.set_position((start + len) as u64);
    Ok(slice)
}

fn storage_bytes(tensor: &TensorRef) -> Result<usize, WeightsError> {
    tensor
        .storage_numel
        .checked_mul(tensor.dtype.size_in_bytes())
        .ok_or_else(|| {
            WeightsError::Malformed(format!("storage `{}` is too large", tensor.storage_key))
        })
}

fn tensor_refs(state_dict: Object) -> Result<Vec<TensorRef>, WeightsError> {
    let Object::Dict(entries) = state_dict else {
        return Err(WeightsError::Malformed(
            "the checkpoint holds no state dict; save `model.state_dict()`".into(),
        ));
    };
    let mut refs = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        let Object::Unicode(name) = key else {
            return Err(WeightsError::Malformed(format!(
                "state-dict key {key:?} is not a string"
            )));
        };
        // An OrderedDict's `_metadata` attribute (module versions) lands among the entries.
        if name == "_metadata" {
            continue;
        }
        refs.push(tensor_ref(name, value)?);
    }
    Ok(refs)
}

fn tensor_ref(name: String, value: Object) -> Result<TensorRef, WeightsError> {
    let not_a_tensor = |name: &str| WeightsError::Malformed(format!("`{name}` is not a tensor"));
    let Object::Reduce { callable, args } = value else {
        return Err(not_a_tensor(&name));
    };
    let Object::Class {
        module_name,
        class_name,
    } = *callable
    else {
        return Err(not_a_tensor(&name));
    };
    let args = match *args {
        Object::Tuple(args) => args,
        _ => return Err(not_a_tensor(&name)),
    };
    match (module_name.as_str(), class_name.as_str()) {
        ("torch._utils", "_rebuild_tensor_v2") => {}
        ("torch._utils", "_rebuild_parameter") => {
            let tensor = args.into_iter().next().ok_or_else(|| not_a_tensor(&name))?;
            return tensor_ref(name, tensor);
        }
        _ => {
            return Err(WeightsError::Malformed(format!(
                "`{name}` is built by {module_name}.{class_name}, not by a tensor constructor"
            )))
        }
    }
    let [Object::PersistentLoad(storage), offset, size, stride, ..] = args.as_slice() else {
        return Err(WeightsError::Malformed(format!(
            "`{name}` has malformed rebuild arguments"
        )));
    };
    let Object::Tuple(storage) = storage.as_ref() else {
        return Err(WeightsError::Malformed(format!(
            "`{name}` has a malformed storage id"
        )));
    };
    let [Object::Unicode(kind), Object::Class {
        class_name: storage_class,
        ..
    }, Object::Unicode(storage_key), _location, numel, ..] = storage.as_slice()
    else {
        return Err(WeightsError::Malformed(format!(
            "`{name}` has a malformed storage id"
        )));
    };
    if kind != "storage" {
        return Err(WeightsError::Malformed(format!(
            "`{name}` has a storage id of kind `{kind}`"
        )));
    }
    let dtype = storage_dtype(storage_class).ok_or_else(|| WeightsError::WrongDtype {
        name: name.clone(),
        found: storage_class.clone(),
    })?;
    let malformed =
        |what: &str| WeightsError::Malformed(format!("`{name}` has a malformed {what}"));
    Ok(TensorRef {
        storage_key: storage_key.clone(),
        dtype,
        storage_numel: as_usize(numel).ok_or_else(|| malformed("storage size"))?,
        offset: as_usize(offset).ok_or_else(|| malformed("storage offset"))?,
        size: usize_tuple(size).ok_or_else(|| malformed("size"))?,
        stride: usize_tuple(stride).ok_or_else(|| malformed("stride"))?,
        name,
    })
}

fn storage_dtype(class_name: &str) -> Option<DType> {
    Some(match class_name {
        "FloatStorage" => DType::F32,
        "DoubleStorage" => DType::F64,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "ByteStorage" => DType::U8,
        "IntStorage" => DType::I32,
        "LongStorage" => DType::I64,
        _ => return None,
    })
}

fn build_tensors(
    refs: Vec<TensorRef>,
    storages: &HashMap<String, Vec<u8>>,
) -> Result<HashMap<String, Tensor>, WeightsError> {
    let mut tensors = HashMap::with_capacity(refs.len());
    for tensor in refs {
        let storage = storages.get(&tensor.storage_key).ok_or_else(|| {
            WeightsError::Truncated(format!(
                "storage `{}` of `{}` is missing",
                tensor.storage_key, tensor.name
            ))
        })?;
        let element = tensor.dtype.size_in_bytes();
        let data = gather(storage, element, tensor.offset, &tensor.size, &tensor.stride).ok_or_else(|| {
            WeightsError::Malformed(format!(
                "`{}` (size {:?}, stride {:?}, offset {}) reaches outside its storage of {} elements",
                tensor.name,
                tensor.size,
                tensor.stride,
                tensor.offset,
                storage.len() / element
            ))
        })?;
        let value = Tensor::from_raw_buffer(&data, tensor.dtype, &tensor.size, &Device::Cpu)?;
        if tensors.insert(tensor.name.clone(), value).is_some() {
            return Err(WeightsError::Malformed(format!(
                "`{}` appears twice",
                tensor.name
            )));
        }
    }
    Ok(tensors)
}

/// Copies the elements of a strided view out of a storage, in row-major order;
/// `None` when the view reaches outside the storage.
fn gather(
    storage: &[u8],
    element: usize,
    offset: usize,
    size: &[usize],
    stride: &[usize],
) -> Option<Vec<u8>> {
    if size.len() != stride.len() {
        return None;
    }
    let numel = size.iter().try_fold(1usize, |n, &d| n.checked_mul(d))?;
    if numel == 0 {
        return Some(Vec::new());
    }
    let last = size.iter().zip(stride).try_fold(offset, |at, (&d, &s)| {
        at.checked_add((d - 1).checked_mul(s)?)
    })?;
    if last.checked_add(1)?.checked_mul(element)? > storage.len() {
        return None;
    }
    let mut out = Vec::with_capacity(numel.checked_mul(element)?);
    let mut index = vec![0usize; size.len()];
    for _ in 0..numel {
        let at = offset + index.iter().zip(stride).map(|(i, s)| i * s).sum::<usize>();
        out.extend_from_slice(storage.get(at * element..(at + 1) * element)?);
        for (i, &d) in index.iter_mut().zip(size).rev() {
            *i += 1;
            if *i < d {
                break;
            }
            *i = 0;
        }
    }
    Some(out)
}

fn as_i64(object: &Object) -> Option<i64> {
    match object {
        Object::Int(v) => Some(i64::from(*v)),
        Object::Long(v) => Some(*v),
        _ => None,
    }
}

fn as_usize(object: &Object) -> Option<usize> {
    as_i64(object).and_then(|v| usize::try_from(v).ok())
}

fn usize_tuple(object: &Object) -> Option<Vec<usize>> {
    match object {
        Object::Tuple(items) => items.iter().map(as_usize).collect(),
        _ => None,
    }
}

fn string_list(object: Object) -> Result<Vec<String>, WeightsError> {
    let (Object::List(items) | Object::Tuple(items)) = object else {
        return Err(WeightsError::Malformed(
            "the storage keys are not a list".into(),
        ));
    };
    items
        .into_iter()
        .map(|item| match item {
            Object::Unicode(key) => Ok(key),
            other => Err(WeightsError::Malformed(format!(
                "storage key {other:?} is not a string"
            ))),
        })
        .collect()
}

fn dict_get<'a>(object: &'a Object, key: &str) -> Option<&'a Object> {
    match object {
        Object::Dict(entries) => entries
            .iter()
            .find(|(k, _)| matches!(k, Object::Unicode(k) if k == key))
            .map(|(_, v)| v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_string_longer_than_the_file_is_refused_before_it_is_allocated() {
        // PROTO 2, BINUNICODE declaring 4 GiB − 1 bytes, then three bytes.
        let pickle = b"\x80\x02X\xff\xff\xff\xffabc";
        match read_pickle(&mut Cursor::new(&pickle[..]), "the state dict") {
            Err(WeightsError::Truncated(message)) => {
                assert!(message.contains("4294967295-byte string"), "{message}")
            }
            other => panic!("expected a truncation error, got {other:?}"),
        }
        let fine = b"\x80\x02X\x02\x00\x00\x00ok.";
        assert!(matches!(
            read_pickle(&mut Cursor::new(&fine[..]), "a string"),
            Ok(Object::Unicode(text)) if text == "ok"
        ));
    }

    #[test]
    fn gather_reads_a_transposed_view() {
        // storage [0 1 2 3 4 5] as f32 bytes, viewed as the transpose of a 2×3 matrix
        let storage: Vec<u8> = (0..6u8).flat_map(|v| f32::from(v).to_le_bytes()).collect();
        let out = gather(&storage, 4, 0, &[3, 2], &[1, 3]).expect("in bounds");
        let values: Vec<f32> = out
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(values, [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }

    #[test]
    fn gather_refuses_a_view_outside_its_storage() {
        let storage = vec![0u8; 4 * 6];
        assert!(gather(&storage, 4, 1, &[2, 3], &[3, 1]).is_none());
        assert!(gather(&storage, 4, 0, &[2, 3], &[usize::MAX, 1]).is_none());
        assert!(gather(&storage, 4, 0, &[2], &[1, 1]).is_none());
        assert_eq!(gather(&storage, 4, 0, &[0, 3], &[3, 1]), Some(Vec::new()));
    }
}
