//! Writing GGUF (version 3): typed metadata, then the tensor table, then each tensor's data
//! aligned to 32 bytes — the layout llama.cpp and `gguf-py` read.

use crate::quant::GgmlType;

const ALIGNMENT: usize = 32;

/// A metadata value, typed as llama.cpp expects each key (counts `u32`, norms' epsilon `f32`).
#[derive(Debug, Clone, PartialEq)]
pub enum Meta {
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    Strs(Vec<String>),
    I32s(Vec<i32>),
}

impl Meta {
    fn write(&self, out: &mut Vec<u8>) {
        let string = |out: &mut Vec<u8>, s: &str| {
            out.extend((s.len() as u64).to_le_bytes());
            out.extend(s.as_bytes());
        };
        match self {
            Meta::U32(v) => {
                out.extend(4u32.to_le_bytes());
                out.extend(v.to_le_bytes());
            }
            Meta::I32(v) => {
                out.extend(5u32.to_le_bytes());
                out.extend(v.to_le_bytes());
            }
            Meta::F32(v) => {
                out.extend(6u32.to_le_bytes());
                out.extend(v.to_le_bytes());
            }
            Meta::Bool(v) => {
                out.extend(7u32.to_le_bytes());
                out.push(*v as u8);
            }
            Meta::Str(s) => {
                out.extend(8u32.to_le_bytes());
                string(out, s);
            }
            Meta::Strs(items) => {
                out.extend(9u32.to_le_bytes());
                out.extend(8u32.to_le_bytes());
                out.extend((items.len() as u64).to_le_bytes());
                for s in items {
                    string(out, s);
                }
            }
            Meta::I32s(items) => {
                out.extend(9u32.to_le_bytes());
                out.extend(5u32.to_le_bytes());
                out.extend((items.len() as u64).to_le_bytes());
                for v in items {
                    out.extend(v.to_le_bytes());
                }
            }
        }
    }
}

/// A tensor to write: GGUF name, dims innermost first, type, and its bytes in that type.
pub struct TensorOut {
    pub name: String,
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    pub data: Vec<u8>,
}

fn type_id(ty: GgmlType) -> u32 {
    match ty {
        GgmlType::F32 => 0,
        GgmlType::F16 => 1,
        GgmlType::Q4_0 => 2,
        GgmlType::Q5_0 => 6,
        GgmlType::Q8_0 => 8,
        GgmlType::Q4K => 12,
        GgmlType::Q6K => 14,
        GgmlType::BF16 => 30,
    }
}

/// The whole file.
pub fn to_bytes(metadata: &[(String, Meta)], tensors: &[TensorOut]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(b"GGUF");
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend((metadata.len() as u64).to_le_bytes());
    for (key, value) in metadata {
        out.extend((key.len() as u64).to_le_bytes());
        out.extend(key.as_bytes());
        value.write(&mut out);
    }
    let mut offset = 0usize;
    for t in tensors {
        out.extend((t.name.len() as u64).to_le_bytes());
        out.extend(t.name.as_bytes());
        out.extend((t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            out.extend(d.to_le_bytes());
        }
        out.extend(type_id(t.ty).to_le_bytes());
        out.extend((offset as u64).to_le_bytes());
        offset += t.data.len().div_ceil(ALIGNMENT) * ALIGNMENT;
    }
    out.resize(out.len().div_ceil(ALIGNMENT) * ALIGNMENT, 0);
    for t in tensors {
        out.extend(&t.data);
        out.resize(out.len().div_ceil(ALIGNMENT) * ALIGNMENT, 0);
    }
    out
}
