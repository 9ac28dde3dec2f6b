//! Constant tensors held by the IR: parameters, folded weights, axes and shapes.

use ndarray::{ArrayD, IxDyn};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    I64,
    Bool,
}

impl DType {
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::I64 => "i64",
            DType::Bool => "bool",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Tensor {
    F32(ArrayD<f32>),
    I64(ArrayD<i64>),
}

impl Tensor {
    pub fn dtype(&self) -> DType {
        match self {
            Tensor::F32(_) => DType::F32,
            Tensor::I64(_) => DType::I64,
        }
    }

    pub fn shape(&self) -> &[usize] {
        match self {
            Tensor::F32(a) => a.shape(),
            Tensor::I64(a) => a.shape(),
        }
    }

    pub fn len(&self) -> usize {
        self.shape().iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn scalar(v: f32) -> Tensor {
        Tensor::F32(ArrayD::from_elem(IxDyn(&[]), v))
    }

    pub fn f32(shape: &[usize], data: Vec<f32>) -> Tensor {
        Tensor::F32(ArrayD::from_shape_vec(IxDyn(shape), data).expect("tensor data matches its shape"))
    }

    pub fn i64_vec(data: &[i64]) -> Tensor {
        Tensor::I64(ArrayD::from_shape_vec(IxDyn(&[data.len()]), data.to_vec()).expect("1-d"))
    }

    pub fn as_f32(&self) -> Option<&ArrayD<f32>> {
        match self {
            Tensor::F32(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<&ArrayD<i64>> {
        match self {
            Tensor::I64(a) => Some(a),
            _ => None,
        }
    }

    /// No NaN or infinity in it (integers always are finite).
    pub fn is_finite(&self) -> bool {
        match self {
            Tensor::F32(a) => a.iter().all(|v| v.is_finite()),
            Tensor::I64(_) => true,
        }
    }

    /// The single value of a one-element f32 tensor (a scalar, or shape [1], [1,1,1,1]...).
    pub fn as_f32_scalar(&self) -> Option<f32> {
        match self {
            Tensor::F32(a) if a.len() == 1 => a.iter().next().copied(),
            _ => None,
        }
    }
}
