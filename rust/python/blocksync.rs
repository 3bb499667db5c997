//! Python surface of `crate::blocksync`: `sync_file_blocks`, `block_hashes`,
//! `sync_file_hashed` (see rust/blocksync.rs). All run without the GIL; I/O errors
//! raise OSError.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// Make the existing file `dst` equal to `src`, writing only differing blocks;
/// returns the bytes written. Runs without the GIL; I/O errors raise OSError.
#[pyfunction]
#[pyo3(signature = (src, dst, block=8192, chunk=1048576))]
fn sync_file_blocks(
    py: Python<'_>,
    src: PathBuf,
    dst: PathBuf,
    block: usize,
    chunk: usize,
) -> PyResult<u64> {
    Ok(py.detach(|| crate::blocksync::sync_file(&src, &dst, block, chunk))?)
}

/// xxh3-128 of every `block` bytes of `path`, 16 bytes each (little-endian).
#[pyfunction]
#[pyo3(signature = (path, block=8192, chunk=1048576))]
fn block_hashes<'py>(
    py: Python<'py>,
    path: PathBuf,
    block: usize,
    chunk: usize,
) -> PyResult<Bound<'py, PyBytes>> {
    let hashes = py.detach(|| crate::blocksync::block_hashes(&path, block, chunk))?;
    Ok(PyBytes::new(py, &hashes))
}

/// Make the existing file `dst` equal to `src` given `src`'s `block_hashes`, reading
/// `src` only where `dst` differs; returns the bytes written.
#[pyfunction]
#[pyo3(signature = (src, dst, hashes, block=8192, chunk=1048576))]
fn sync_file_hashed(
    py: Python<'_>,
    src: PathBuf,
    dst: PathBuf,
    hashes: &[u8],
    block: usize,
    chunk: usize,
) -> PyResult<u64> {
    Ok(py.detach(|| crate::blocksync::sync_file_hashed(&src, &dst, hashes, block, chunk))?)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(sync_file_blocks, m)?)?;
    m.add_function(wrap_pyfunction!(block_hashes, m)?)?;
    m.add_function(wrap_pyfunction!(sync_file_hashed, m)?)?;
    Ok(())
}
