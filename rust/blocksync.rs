//! Making one file equal to another by rewriting only the blocks that differ.
//!
//! Used by snapshot restore (dbgym/dbms/snapshot.py): a relation file PostgreSQL
//! touched in a few pages since the snapshot gets those pages written back instead of
//! the whole file. Files are read in `chunk`-sized pieces, in parallel with rayon
//! (positional I/O, so no shared file offsets). Two ways to find differing blocks:
//! - [`sync_file`] reads both files and compares them (equal chunks cost one memcmp);
//! - [`sync_file_hashed`] reads only the live file and compares each block's xxh3-128
//!   hash with the snapshot's [`block_hashes`], taken once when the snapshot was made;
//!   only differing blocks are then read from the snapshot. Half the reading.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use rayon::prelude::*;
use xxhash_rust::xxh3::xxh3_128;

/// Bytes per stored block hash (xxh3-128, little-endian).
pub const HASH_BYTES: usize = 16;

/// Bytes written to `dst` by [`sync_file`].
pub type Written = u64;

fn read_full(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Rewrites the differing `block`-sized runs of one chunk; returns bytes written.
fn sync_chunk(
    src: &File,
    dst: &File,
    offset: u64,
    len: usize,
    block: usize,
    bufs: &mut (Vec<u8>, Vec<u8>),
) -> io::Result<Written> {
    let (want, have) = (&mut bufs.0[..len], &mut bufs.1[..len]);
    let got_want = read_full(src, want, offset)?;
    let got_have = read_full(dst, have, offset)?;
    if got_want != len || got_have != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("file changed size while syncing (offset {offset})"),
        ));
    }
    if want == have {
        return Ok(0);
    }
    let mut written = 0u64;
    let mut run_start: Option<usize> = None;
    for i in (0..len).step_by(block) {
        let end = (i + block).min(len);
        let differs = want[i..end] != have[i..end];
        match (differs, run_start) {
            (true, None) => run_start = Some(i),
            (false, Some(start)) => {
                dst.write_all_at(&want[start..i], offset + start as u64)?;
                written += (i - start) as u64;
                run_start = None;
            }
            _ => {}
        }
    }
    if let Some(start) = run_start {
        dst.write_all_at(&want[start..len], offset + start as u64)?;
        written += (len - start) as u64;
    }
    Ok(written)
}

/// Make `dst` (an existing file) byte-identical to `src`, writing only differing
/// `block`-sized runs of the common prefix, then copying a missing tail or cutting an
/// extra one. Returns the number of bytes written.
pub fn sync_file(src: &Path, dst: &Path, block: usize, chunk: usize) -> io::Result<Written> {
    crate::pool::install(|| sync_file_here(src, dst, block, chunk))
}

fn sync_file_here(src: &Path, dst: &Path, block: usize, chunk: usize) -> io::Result<Written> {
    check_sizes(block, chunk)?;
    let src_file = File::open(src)?;
    let dst_file = OpenOptions::new().read(true).write(true).open(dst)?;
    let src_len = src_file.metadata()?.len();
    let dst_len = dst_file.metadata()?.len();
    let common = src_len.min(dst_len);
    let chunks = common.div_ceil(chunk as u64);
    let written: Written = (0..chunks)
        .into_par_iter()
        .map_init(
            || (vec![0u8; chunk], vec![0u8; chunk]),
            |bufs, index| {
                let offset = index * chunk as u64;
                let len = (common - offset).min(chunk as u64) as usize;
                sync_chunk(&src_file, &dst_file, offset, len, block, bufs)
            },
        )
        .try_reduce(|| 0, |a, b| Ok(a + b))?;
    let mut total = written;
    if dst_len > src_len {
        dst_file.set_len(src_len)?;
    } else if src_len > dst_len {
        let mut buf = vec![0u8; chunk];
        let mut offset = dst_len;
        while offset < src_len {
            let len = (src_len - offset).min(chunk as u64) as usize;
            let got = read_full(&src_file, &mut buf[..len], offset)?;
            if got == 0 {
                break;
            }
            dst_file.write_all_at(&buf[..got], offset)?;
            offset += got as u64;
            total += got as u64;
        }
    }
    Ok(total)
}

fn check_sizes(block: usize, chunk: usize) -> io::Result<()> {
    if block == 0 || chunk == 0 || chunk % block != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("chunk ({chunk}) must be a non-zero multiple of block ({block})"),
        ));
    }
    Ok(())
}

/// xxh3-128 of every `block`-sized piece of `path` (the last one may be shorter),
/// concatenated as little-endian 16-byte values.
pub fn block_hashes(path: &Path, block: usize, chunk: usize) -> io::Result<Vec<u8>> {
    crate::pool::install(|| block_hashes_here(path, block, chunk))
}

fn block_hashes_here(path: &Path, block: usize, chunk: usize) -> io::Result<Vec<u8>> {
    check_sizes(block, chunk)?;
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let chunks = len.div_ceil(chunk as u64);
    let parts: Vec<Vec<u8>> = (0..chunks)
        .into_par_iter()
        .map_init(
            || vec![0u8; chunk],
            |buf, index| -> io::Result<Vec<u8>> {
                let offset = index * chunk as u64;
                let n = (len - offset).min(chunk as u64) as usize;
                if read_full(&file, &mut buf[..n], offset)? != n {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{} shrank while hashing", path.display()),
                    ));
                }
                let mut out = Vec::with_capacity(n.div_ceil(block) * HASH_BYTES);
                for piece in buf[..n].chunks(block) {
                    out.extend_from_slice(&xxh3_128(piece).to_le_bytes());
                }
                Ok(out)
            },
        )
        .collect::<io::Result<_>>()?;
    Ok(parts.concat())
}

/// Make `dst` equal to `src`, where `hashes` are `src`'s [`block_hashes`]: reads `dst`
/// once, and from `src` only the blocks whose hash differs (or that `dst` lacks).
/// Returns the number of bytes written.
pub fn sync_file_hashed(
    src: &Path,
    dst: &Path,
    hashes: &[u8],
    block: usize,
    chunk: usize,
) -> io::Result<Written> {
    crate::pool::install(|| sync_file_hashed_here(src, dst, hashes, block, chunk))
}

fn sync_file_hashed_here(
    src: &Path,
    dst: &Path,
    hashes: &[u8],
    block: usize,
    chunk: usize,
) -> io::Result<Written> {
    check_sizes(block, chunk)?;
    let src_file = File::open(src)?;
    let dst_file = OpenOptions::new().read(true).write(true).open(dst)?;
    let src_len = src_file.metadata()?.len();
    let dst_len = dst_file.metadata()?.len();
    let blocks = src_len.div_ceil(block as u64) as usize;
    if hashes.len() != blocks * HASH_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} has {blocks} blocks but {} hashes were given (snapshot changed?)",
                src.display(),
                hashes.len() / HASH_BYTES
            ),
        ));
    }
    let per_chunk = chunk / block;
    let chunks = src_len.div_ceil(chunk as u64);
    let written: Written = (0..chunks)
        .into_par_iter()
        .map_init(
            || vec![0u8; chunk],
            |buf, index| -> io::Result<Written> {
                let offset = index * chunk as u64;
                let n = (src_len - offset).min(chunk as u64) as usize;
                let have = read_full(&dst_file, &mut buf[..n], offset)?;
                let first = index as usize * per_chunk;
                let mut written = 0u64;
                let mut run: Option<usize> = None; // start (bytes into the chunk)
                let mut flush = |start: usize, end: usize, buf: &mut Vec<u8>| -> io::Result<()> {
                    let part = &mut buf[start..end];
                    if read_full(&src_file, part, offset + start as u64)? != part.len() {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("{} shrank while restoring", src.display()),
                        ));
                    }
                    dst_file.write_all_at(part, offset + start as u64)?;
                    written += part.len() as u64;
                    Ok(())
                };
                for (k, start) in (0..n).step_by(block).enumerate() {
                    let end = (start + block).min(n);
                    let want = &hashes[(first + k) * HASH_BYTES..(first + k + 1) * HASH_BYTES];
                    let same = end <= have && xxh3_128(&buf[start..end]).to_le_bytes() == want;
                    match (same, run) {
                        (false, None) => run = Some(start),
                        (true, Some(s)) => {
                            flush(s, start, buf)?;
                            run = None;
                        }
                        _ => {}
                    }
                }
                if let Some(s) = run {
                    flush(s, n, buf)?;
                }
                Ok(written)
            },
        )
        .try_reduce(|| 0, |a, b| Ok(a + b))?;
    if dst_len > src_len {
        dst_file.set_len(src_len)?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("dbgym-blocksync-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn rewrites_only_differing_blocks() {
        let dir = temp_dir("blocks");
        let (src, dst) = (dir.join("src"), dir.join("dst"));
        let want = pattern(3 * 65536 + 100, 7);
        let mut have = want.clone();
        have[10] ^= 1; // block 0
        have[8192 * 5 + 3] ^= 1; // block 5
        have[8192 * 6] ^= 1; // block 6: same run as block 5
        have[3 * 65536 + 50] ^= 1; // the short last block
        fs::write(&src, &want).unwrap();
        fs::write(&dst, &have).unwrap();
        let written = sync_file(&src, &dst, 8192, 65536).unwrap();
        assert!(
            fs::read(&dst).unwrap() == want,
            "content differs after sync"
        );
        assert_eq!(written, 8192 + 2 * 8192 + 100);
        assert_eq!(sync_file(&src, &dst, 8192, 65536).unwrap(), 0);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn grows_and_shrinks() {
        let dir = temp_dir("sizes");
        let (src, dst) = (dir.join("src"), dir.join("dst"));
        let want = pattern(100_000, 3);
        fs::write(&src, &want).unwrap();
        fs::write(&dst, &want[..40_000]).unwrap();
        assert_eq!(sync_file(&src, &dst, 8192, 16384).unwrap(), 60_000);
        assert!(
            fs::read(&dst).unwrap() == want,
            "content differs after sync"
        );
        let mut longer = want.clone();
        longer.extend_from_slice(&[1, 2, 3]);
        fs::write(&dst, &longer).unwrap();
        assert_eq!(sync_file(&src, &dst, 8192, 16384).unwrap(), 0);
        assert!(
            fs::read(&dst).unwrap() == want,
            "content differs after sync"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn rejects_bad_sizes_and_missing_files() {
        let dir = temp_dir("errors");
        let (src, dst) = (dir.join("src"), dir.join("dst"));
        fs::write(&src, b"x").unwrap();
        assert!(sync_file(&src, &dst, 8192, 65536).is_err()); // dst missing
        fs::write(&dst, b"y").unwrap();
        assert!(sync_file(&src, &dst, 8192, 1000).is_err());
        assert!(sync_file(&src, &dst, 0, 8192).is_err());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn hashed_sync_reads_snapshot_blocks_only_where_needed() {
        let dir = temp_dir("hashed");
        let (src, dst) = (dir.join("src"), dir.join("dst"));
        let want = pattern(5 * 65536 + 777, 11);
        fs::write(&src, &want).unwrap();
        let hashes = block_hashes(&src, 8192, 65536).unwrap();
        assert_eq!(hashes.len(), (want.len().div_ceil(8192)) * HASH_BYTES);
        // Scattered changes, same size.
        let mut have = want.clone();
        for pos in [0, 8192 * 3 + 5, 8192 * 4, 65536 * 2 + 1, want.len() - 1] {
            have[pos] ^= 0xff;
        }
        fs::write(&dst, &have).unwrap();
        let written = sync_file_hashed(&src, &dst, &hashes, 8192, 65536).unwrap();
        assert!(
            fs::read(&dst).unwrap() == want,
            "content differs after hashed sync"
        );
        assert_eq!(written, 8192 + 2 * 8192 + 8192 + 777);
        assert_eq!(
            sync_file_hashed(&src, &dst, &hashes, 8192, 65536).unwrap(),
            0
        );
        // Shorter (ends mid-block) and longer destinations.
        fs::write(&dst, &want[..100_000]).unwrap();
        sync_file_hashed(&src, &dst, &hashes, 8192, 65536).unwrap();
        assert!(
            fs::read(&dst).unwrap() == want,
            "short destination not completed"
        );
        let mut longer = want.clone();
        longer.extend_from_slice(&[9; 20_000]);
        fs::write(&dst, &longer).unwrap();
        assert_eq!(
            sync_file_hashed(&src, &dst, &hashes, 8192, 65536).unwrap(),
            0
        );
        assert!(fs::read(&dst).unwrap() == want, "long destination not cut");
        // Hashes of another file are refused, not trusted.
        assert!(sync_file_hashed(&src, &dst, &hashes[..16], 8192, 65536).is_err());
        fs::remove_dir_all(dir).unwrap();
    }
}
