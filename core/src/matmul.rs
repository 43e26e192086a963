//! Matrix products on the calling thread, by the `gemm` crate (which candle uses too): it chooses
//! AVX2 + FMA or portable code when it runs, so the binary runs on any CPU. (Its AVX-512 kernels
//! need nightly Rust; Net has its own, `architectures::net::avx512`.)

/// A matrix of `rows × cols` in a slice: element (r, c) is at `r * row_stride + c * col_stride`.
#[derive(Debug, Clone, Copy)]
pub struct Matrix<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Matrix<'a> {
    /// `data` read row by row, each row `cols` long.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::strided(data, rows, cols, cols)
    }

    /// `data` read row by row, row `r` starting at `r * row_stride`.
    pub fn strided(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride: 1,
        }
    }

    /// The transpose of the row-major `cols × rows` matrix in `data`.
    pub fn transposed(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride: 1,
            col_stride: rows,
        }
    }

    /// Whether every element lies inside the slice.
    fn fits(&self) -> bool {
        if self.rows == 0 || self.cols == 0 {
            return true;
        }
        let last = (self.rows - 1)
            .checked_mul(self.row_stride)
            .zip((self.cols - 1).checked_mul(self.col_stride))
            .and_then(|(a, b)| a.checked_add(b));
        last.is_some_and(|last| last < self.data.len())
    }
}

/// `dst = lhs × rhs`, or `dst += lhs × rhs` when `accumulate`; `dst` is row-major
/// `lhs.rows × rhs.cols`.
///
/// # Panics
/// When the shapes do not agree or a matrix reaches outside its slice: the callers' shapes are
/// fixed by their networks, so this is a bug, never a consequence of input.
pub fn matmul(dst: &mut [f32], lhs: Matrix<'_>, rhs: Matrix<'_>, accumulate: bool) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert!(
        rhs.rows == k && lhs.fits() && rhs.fits() && dst.len() >= m * n,
        "matmul of {m}×{k} by {}×{n} into {} values",
        rhs.rows,
        dst.len()
    );
    let stride = |s: usize| s as isize;
    // SAFETY: every element that `gemm` reads or writes is inside its slice (checked above: `dst`
    // holds m × n values, row-major; `fits` bounds lhs and rhs), `dst` is borrowed mutably so it
    // aliases neither input, and `Parallelism::None` keeps the work on this thread.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            stride(n),
            accumulate,
            lhs.data.as_ptr(),
            stride(lhs.col_stride),
            stride(lhs.row_stride),
            rhs.data.as_ptr(),
            stride(rhs.col_stride),
            stride(rhs.row_stride),
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(lhs: &[f32], rhs: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| lhs[i * k + p] * rhs[p * n + j]).sum();
            }
        }
        out
    }

    #[test]
    fn products_match_the_definition_in_every_layout() {
        let (m, k, n) = (7, 13, 5);
        let lhs: Vec<f32> = (0..m * k).map(|i| (i % 11) as f32 - 5.0).collect();
        let rhs: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 * 0.5).collect();
        let expected = naive(&lhs, &rhs, m, k, n);
        let mut dst = vec![0f32; m * n];
        matmul(
            &mut dst,
            Matrix::rows(&lhs, m, k),
            Matrix::rows(&rhs, k, n),
            false,
        );
        assert_eq!(dst, expected);
        // rhs given as its transpose, n × k row-major
        let rhs_t: Vec<f32> = (0..n * k).map(|i| rhs[(i % k) * n + i / k]).collect();
        matmul(
            &mut dst,
            Matrix::rows(&lhs, m, k),
            Matrix::transposed(&rhs_t, k, n),
            true,
        );
        let doubled: Vec<f32> = expected.iter().map(|v| v * 2.0).collect();
        assert_eq!(dst, doubled);
    }

    #[test]
    #[should_panic(expected = "matmul of")]
    fn a_matrix_outside_its_slice_is_refused() {
        let mut dst = vec![0f32; 4];
        matmul(
            &mut dst,
            Matrix::rows(&[1.0; 3], 2, 2),
            Matrix::rows(&[1.0; 4], 2, 2),
            false,
        );
    }
}
