//! Arrays as `.npy` files, for the Python checks the tests hand tensors to.

/// A float32 array as a `.npy` file (format 1.0, little-endian, C order), for
/// handing tensors to the Python checks.
pub fn npy_bytes(a: &ndarray::ArrayD<f32>) -> Vec<u8> {
    let shape: Vec<String> = a.shape().iter().map(|d| d.to_string()).collect();
    let shape = if shape.len() == 1 {
        format!("{},", shape[0])
    } else {
        shape.join(", ")
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({shape}), }}");
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend(a.as_standard_layout().iter().flat_map(|v| v.to_le_bytes()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_aligned_and_data_follows() {
        let a =
            ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[2, 3]), vec![0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        let b = npy_bytes(&a);
        let header_len = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0, "numpy wants the data 64-byte aligned");
        assert!(std::str::from_utf8(&b[10..10 + header_len])
            .unwrap()
            .contains("'shape': (2, 3)"));
        assert_eq!(&b[10 + header_len + 4..10 + header_len + 8], 1.0f32.to_le_bytes());
        assert_eq!(b.len(), 10 + header_len + 24);
    }
}
