//! GGUF, llama.cpp's model file: a header, typed key–value metadata (the architecture's
//! hyper-parameters, the tokenizer, the chat template) and a table of tensors (name, dims,
//! GGML type, offset) whose data follows, aligned. Versions 2 and 3, little-endian.
//!
//! A model file is untrusted input: every count and length is checked against the bytes that
//! remain before anything is allocated for it, every size product is checked for overflow, and
//! every tensor must lie inside the file — so a file can never make the reader allocate more
//! than a small multiple of its own size, or panic.
//!
//! Our own reader rather than a crate's: it is ~250 lines, it borrows the file's bytes (the page
//! never holds a model twice), and the guarantees above are ours to test and fuzz; `ggus`
//! (the small crate that builds for wasm32) also pulls `regex`, `num_enum`, `indexmap` and
//! `ggml-quants`, and the dequantization is ours anyway (`crate::quant`), since the engines read
//! the blocks themselves.

pub mod export;
pub mod model;
mod tokenizer;
pub mod write;

use std::collections::BTreeMap;

use crate::quant::{GgmlType, QuantError};

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
/// Arrays nested deeper than this are refused (real files nest none).
const MAX_DEPTH: usize = 4;
/// GGML tensors have at most four dimensions.
const MAX_DIMS: u32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("not a GGUF file (it does not start with \"GGUF\")")]
    NotGguf,
    #[error("GGUF version {0} is not supported (2 and 3 are)")]
    Version(u32),
    #[error("the GGUF file is truncated: {0}")]
    Truncated(String),
    #[error("GGUF tensor `{name}` ({len} bytes at offset {offset}) lies past the end of the {file_len}-byte file")]
    PastEnd { name: String, len: u64, offset: u64, file_len: u64 },
    #[error("GGUF metadata `{key}`: {reason}")]
    Metadata { key: String, reason: String },
    #[error("GGUF tensor `{name}`: {reason}")]
    Tensor { name: String, reason: String },
    #[error("GGUF tensor `{name}`: {source}")]
    TensorType { name: String, source: QuantError },
}

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    UInt(u64),
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    Array(Vec<Value>),
}

impl Value {
    fn type_name(&self) -> &'static str {
        match self {
            Value::UInt(_) => "an unsigned integer",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Bool(_) => "a bool",
            Value::Str(_) => "a string",
            Value::Array(_) => "an array",
        }
    }
}

/// One tensor's entry in the table.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// GGML order: `dims[0]` is the row (the fastest-moving index).
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Where its data starts in the file, and its length.
    pub start: usize,
    pub len: usize,
}

impl TensorInfo {
    /// Row-major shape, outermost first (HF's order: `[out, in]` for a matrix).
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }
}

/// A parsed GGUF file; tensor data stays in the caller's bytes.
#[derive(Debug, Clone)]
pub struct Gguf {
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
}

/// A cursor over the file that never reads past its end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8], GgufError> {
        if n > self.left() as u64 {
            return Err(GgufError::Truncated(format!("{what} needs {n} bytes, {} are left", self.left())));
        }
        let s = &self.bytes[self.at..self.at + n as usize];
        self.at += n as usize;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        Ok(self.take(N as u64, what)?.try_into().expect("took N bytes"))
    }
    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn string(&mut self, what: &str) -> Result<String, GgufError> {
        let n = self.u64(what)?;
        let bytes = self.take(n, what)?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    /// A count of items each at least `min_bytes` long: refused if the rest of the file could
    /// not hold that many, so the count can size an allocation.
    fn count(&mut self, what: &str, min_bytes: u64) -> Result<usize, GgufError> {
        let n = self.u64(what)?;
        if n.saturating_mul(min_bytes) > self.left() as u64 {
            return Err(GgufError::Truncated(format!(
                "{what}: {n} items cannot fit in the {} bytes left",
                self.left()
            )));
        }
        Ok(n as usize)
    }

    fn value(&mut self, ty: u32, key: &str, depth: usize) -> Result<Value, GgufError> {
        let bad = |reason: String| GgufError::Metadata { key: key.into(), reason };
        Ok(match ty {
            0 => Value::UInt(self.array::<1>(key)?[0] as u64),
            1 => Value::Int(self.array::<1>(key)?[0] as i8 as i64),
            2 => Value::UInt(u16::from_le_bytes(self.array(key)?) as u64),
            3 => Value::Int(i16::from_le_bytes(self.array(key)?) as i64),
            4 => Value::UInt(self.u32(key)? as u64),
            5 => Value::Int(i32::from_le_bytes(self.array(key)?) as i64),
            6 => Value::Float(f32::from_le_bytes(self.array(key)?) as f64),
            7 => match self.array::<1>(key)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(bad(format!("a bool of {b}"))),
            },
            8 => Value::Str(self.string(key)?),
            9 => {
                if depth >= MAX_DEPTH {
                    return Err(bad(format!("arrays nested more than {MAX_DEPTH} deep")));
                }
                let item = self.u32(key)?;
                let min = match item {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => 12,
                    other => return Err(bad(format!("unknown value type {other}"))),
                };
                let n = self.count(key, min)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(item, key, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::UInt(self.u64(key)?),
            11 => Value::Int(i64::from_le_bytes(self.array(key)?)),
            12 => Value::Float(f64::from_le_bytes(self.array(key)?)),
            other => return Err(bad(format!("unknown value type {other}"))),
        })
    }
}

impl Gguf {
    /// Parses and checks a whole GGUF file: its header, metadata and tensor table, and that
    /// every tensor's data lies inside `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, GgufError> {
        Self::parse_head(bytes, bytes.len() as u64)
    }

    /// Parses the first bytes of a GGUF file of `file_len` bytes — at least its header,
    /// metadata and tensor table — checking every tensor against the file's length: what the
    /// page reads of a file before deciding to read the rest.
    pub fn parse_head(bytes: &[u8], file_len: u64) -> Result<Self, GgufError> {
        let mut r = Reader { bytes, at: 0 };
        if bytes.len() < 4 || &bytes[..4] != MAGIC {
            return Err(GgufError::NotGguf);
        }
        r.at = 4;
        let version = r.u32("the version")?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::Version(version));
        }
        // The smallest tensor entry: an empty name (8), one dim count (4), one dim (8), a type
        // (4), an offset (8); the smallest key-value: an empty key (8), a type (4), one byte.
        let n_tensors = r.u64("the tensor count")?;
        let n_kv = r.count("the metadata count", 13)?;
        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = r.string("a metadata key")?;
            let ty = r.u32(&key)?;
            let value = r.value(ty, &key, 0)?;
            if metadata.insert(key.clone(), value).is_some() {
                return Err(GgufError::Metadata { key, reason: "appears twice".into() });
            }
        }
        if n_tensors.saturating_mul(32) > r.left() as u64 {
            return Err(GgufError::Truncated(format!("{n_tensors} tensor entries cannot fit in the file")));
        }
        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(Value::UInt(a)) if a.is_power_of_two() && *a <= 1 << 20 => *a,
            Some(other) => {
                return Err(GgufError::Metadata {
                    key: "general.alignment".into(),
                    reason: format!("{other:?} is not a power of two up to 1 MiB"),
                });
            }
        };
        let mut raw = Vec::with_capacity(n_tensors as usize);
        let mut names = std::collections::BTreeSet::new();
        for _ in 0..n_tensors {
            let name = r.string("a tensor name")?;
            let bad = |reason: String| GgufError::Tensor { name: name.clone(), reason };
            let n_dims = r.u32(&name)?;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(bad(format!("{n_dims} dimensions (1 to {MAX_DIMS} are allowed)")));
            }
            let dims = (0..n_dims).map(|_| r.u64(&name)).collect::<Result<Vec<_>, _>>()?;
            let ty = GgmlType::from_id(r.u32(&name)?)
                .map_err(|source| GgufError::TensorType { name: name.clone(), source })?;
            let offset = r.u64(&name)?;
            if !names.insert(name.clone()) {
                return Err(bad("appears twice".into()));
            }
            let n = dims
                .iter()
                .try_fold(1u64, |a, &d| a.checked_mul(d))
                .ok_or_else(|| bad(format!("{dims:?} overflows")))?;
            let len = ty
                .bytes_for(dims[0], n)
                .map_err(|source| GgufError::TensorType { name: name.clone(), source })?
                .ok_or_else(|| bad(format!("{dims:?} overflows")))?;
            if n == 0 {
                return Err(bad(format!("an empty tensor {dims:?}")));
            }
            if offset % alignment != 0 {
                return Err(bad(format!("offset {offset} is not aligned to {alignment}")));
            }
            raw.push((name, dims, ty, offset, len));
        }
        let data = (r.at as u64).div_ceil(alignment) * alignment;
        let mut tensors = Vec::with_capacity(raw.len());
        for (name, dims, ty, offset, len) in raw {
            let start = data.checked_add(offset);
            let end = start.and_then(|s| s.checked_add(len));
            match (start, end) {
                (Some(start), Some(end)) if end <= file_len => {
                    tensors.push(TensorInfo { name, dims, ty, start: start as usize, len: len as usize })
                }
                _ => return Err(GgufError::PastEnd { name, len, offset, file_len }),
            }
        }
        Ok(Gguf { version, metadata, tensors })
    }

    /// A metadata value, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    fn wrong(key: &str, want: &str, v: &Value) -> GgufError {
        GgufError::Metadata { key: key.into(), reason: format!("is {}, expected {want}", v.type_name()) }
    }

    /// A string value; `Ok(None)` when absent, an error when of another type.
    pub fn str(&self, key: &str) -> Result<Option<&str>, GgufError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s)),
            Some(v) => Err(Self::wrong(key, "a string", v)),
        }
    }

    /// A non-negative integer value.
    pub fn uint(&self, key: &str) -> Result<Option<u64>, GgufError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::UInt(n)) => Ok(Some(*n)),
            Some(Value::Int(n)) if *n >= 0 => Ok(Some(*n as u64)),
            Some(v) => Err(Self::wrong(key, "a non-negative integer", v)),
        }
    }

    /// A number value.
    pub fn float(&self, key: &str) -> Result<Option<f64>, GgufError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Float(x)) => Ok(Some(*x)),
            Some(Value::UInt(n)) => Ok(Some(*n as f64)),
            Some(Value::Int(n)) => Ok(Some(*n as f64)),
            Some(v) => Err(Self::wrong(key, "a number", v)),
        }
    }

    /// An array of strings.
    pub fn strings(&self, key: &str) -> Result<Option<Vec<&str>>, GgufError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::Str(s) => Ok(s.as_str()),
                    other => Err(Self::wrong(key, "an array of strings", other)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(v) => Err(Self::wrong(key, "an array of strings", v)),
        }
    }

    /// An array of integers.
    pub fn ints(&self, key: &str) -> Result<Option<Vec<i64>>, GgufError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::Int(n) => Ok(*n),
                    Value::UInt(n) => Ok(*n as i64),
                    other => Err(Self::wrong(key, "an array of integers", other)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(v) => Err(Self::wrong(key, "an array of integers", v)),
        }
    }
}
