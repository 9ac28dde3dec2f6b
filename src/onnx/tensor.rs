//! Tensors to and from TensorProto: written as little-endian `raw_data`, read
//! from `raw_data` or the typed fields.

use super::pb::{data_type, TensorProto};
use crate::ir::{DType, Tensor};
use anyhow::{bail, ensure, Context, Result};
use ndarray::{ArrayD, IxDyn};

pub fn tensor_to_proto(name: &str, t: &Tensor) -> TensorProto {
    let dims = t.shape().iter().map(|&d| d as i64).collect();
    let (data_type, raw_data) = match t {
        Tensor::F32(a) => (data_type::FLOAT, a.iter().flat_map(|v| v.to_le_bytes()).collect()),
        Tensor::I64(a) => (data_type::INT64, a.iter().flat_map(|v| v.to_le_bytes()).collect()),
    };
    TensorProto {
        name: name.to_string(),
        dims,
        data_type,
        raw_data,
        ..Default::default()
    }
}

pub fn tensor_from_proto(p: &TensorProto) -> Result<Tensor> {
    ensure!(
        p.data_location == 0 && p.external_data.is_empty(),
        "tensor {} keeps its data in an external file",
        p.name
    );
    ensure!(
        p.dims.iter().all(|&d| d >= 0),
        "tensor {} has negative dims {:?}",
        p.name,
        p.dims
    );
    let shape: Vec<usize> = p.dims.iter().map(|&d| d as usize).collect();
    // A file can claim any dims: their product may overflow.
    let n = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .with_context(|| format!("tensor {} has dims {:?}: too many values", p.name, p.dims))?;
    let wrong = |got: usize| anyhow::anyhow!("tensor {} of shape {:?} holds {got} values", p.name, p.dims);
    Ok(match p.data_type {
        data_type::FLOAT => {
            let v: Vec<f32> = if !p.raw_data.is_empty() {
                p.raw_data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect()
            } else {
                p.float_data.clone()
            };
            ensure!(v.len() == n, wrong(v.len()));
            Tensor::F32(ArrayD::from_shape_vec(IxDyn(&shape), v)?)
        }
        data_type::INT64 => {
            let v: Vec<i64> = if !p.raw_data.is_empty() {
                p.raw_data
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                    .collect()
            } else {
                p.int64_data.clone()
            };
            ensure!(v.len() == n, wrong(v.len()));
            Tensor::I64(ArrayD::from_shape_vec(IxDyn(&shape), v)?)
        }
        other => bail!(
            "tensor {} has data type {other}; srgraph reads float32 and int64",
            p.name
        ),
    })
}

pub fn elem_type(d: DType) -> i32 {
    match d {
        DType::F32 => data_type::FLOAT,
        DType::I64 => data_type::INT64,
        DType::Bool => data_type::BOOL,
    }
}

pub fn dtype_of(elem_type: i32) -> Result<DType> {
    Ok(match elem_type {
        data_type::FLOAT => DType::F32,
        data_type::INT64 => DType::I64,
        data_type::BOOL => DType::Bool,
        other => bail!("element type {other} is not supported"),
    })
}
