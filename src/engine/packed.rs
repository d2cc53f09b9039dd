//! Packed vectors: the full-precision vectors of a collection, densely in one
//! append-only file per epoch, `vectors/c{collection}-e{epoch}.vec`, read through a
//! memory map.
//!
//! A row is the vector as `dim` little-endian f32 followed by the CRC-32 of the
//! collection id, the vector id and those bytes (the encoding vectors had as redb
//! values in schema 2), so a damaged row, or a row found where another vector was
//! expected, is reported and never used. Rows are in increasing id order; redb's
//! `vector_blocks` table maps runs of ids to rows (one [`Block`] per insert batch, and
//! after a compaction blocks that list their ids) and the collection record commits
//! the number of valid rows. Crash guarantees follow from the order of writes: a
//! batch's rows are written at the committed end of the file and made durable before
//! the redb transaction naming them commits, so an acknowledged batch is complete and
//! a crashed one is a tail past the committed length, overwritten by the next write
//! and cut off when a writer next opens the store.
//!
//! Why one CRC per row rather than per block: a search rescoring 40 candidates reads
//! 40 rows from 40 places; checking a row costs its own bytes, a block's would cost
//! the whole block. Rows verified once are remembered in a bitmap (one bit per row),
//! so repeated scans do not checksum again.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::error::{Error, Result};

/// Directory of packed vector files inside a store directory.
pub const VECTORS_DIR: &str = "vectors";

/// Rows per block written by a compaction.
pub(crate) const COMPACT_BLOCK_ROWS: usize = 65_536;

/// File name of a collection's packed vectors in one epoch.
pub(crate) fn file_name(collection: u32, epoch: u64) -> String {
    format!("c{collection}-e{epoch}.vec")
}

/// Bytes per row of a `dim`-dimensional collection.
pub(crate) fn stride(dim: usize) -> usize {
    4 * dim + 4
}

/// A run of rows: redb's `vector_blocks` value, keyed by (collection, first id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Block {
    /// Row of the first vector.
    pub first_row: u64,
    /// Number of rows.
    pub count: u64,
    /// The ids of the rows when they are not `first id ..` contiguous (after a
    /// compaction); empty otherwise.
    pub ids: Vec<u64>,
}

impl Block {
    /// The row of `id` in this block keyed by `first_id`, if it holds it.
    pub(crate) fn row_of(&self, first_id: u64, id: u64) -> Option<u64> {
        if self.ids.is_empty() {
            (id >= first_id && id - first_id < self.count).then(|| self.first_row + id - first_id)
        } else {
            self.ids
                .binary_search(&id)
                .ok()
                .map(|i| self.first_row + i as u64)
        }
    }

    fn id_at(&self, first_id: u64, offset: u64) -> u64 {
        if self.ids.is_empty() {
            first_id + offset
        } else {
            self.ids[offset as usize]
        }
    }
}

/// Write `rows` (already encoded, `stride` bytes each) at row `at_row` of the file at
/// `path` (created if missing; anything past it is a crashed write's tail and is
/// overwritten), and make them durable.
pub(crate) fn write_rows(path: &Path, stride: usize, at_row: u64, rows: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.seek(SeekFrom::Start(at_row * stride as u64))
        .map_err(|e| Error::io(path, e))?;
    f.write_all(rows).map_err(|e| Error::io(path, e))?;
    f.sync_data().map_err(|e| Error::io(path, e))
}

/// Encode vectors as rows of collection `cid` with ids `first_id..`.
pub(crate) fn encode_rows<'a>(
    cid: u32,
    first_id: u64,
    vectors: impl IntoIterator<Item = &'a [f32]>,
    out: &mut Vec<u8>,
) {
    out.clear();
    let mut row = Vec::new();
    for (i, v) in vectors.into_iter().enumerate() {
        codec::encode_vector((cid, first_id + i as u64), v, &mut row);
        out.extend_from_slice(&row);
    }
}

/// One collection's packed file of one epoch, mapped, with its blocks.
pub(crate) struct Packed {
    pub(crate) epoch: u64,
    rows: u64,
    cid: u32,
    dim: usize,
    name: String,
    path: PathBuf,
    map: Option<memmap2::Mmap>,
    /// (first id, block), in row order.
    blocks: Vec<(u64, Block)>,
    verified: Vec<AtomicU64>,
}

#[cfg(not(target_endian = "little"))]
compile_error!("packed vectors are read in place as little-endian f32");

impl Packed {
    /// Map the first `rows` rows of the file at `path` described by `blocks` (first
    /// id, block; in key order). The rows already verified by `previous` (the same
    /// file mapped shorter) stay verified.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn open(
        path: PathBuf,
        cid: u32,
        name: &str,
        epoch: u64,
        dim: usize,
        rows: u64,
        blocks: Vec<(u64, Block)>,
        previous: Option<&Packed>,
    ) -> Result<Packed> {
        let corrupt = |message: String| Error::Corrupted {
            path: path.clone(),
            message,
        };
        let mut next_row = 0u64;
        for (first_id, b) in &blocks {
            if b.first_row != next_row || (!b.ids.is_empty() && b.ids.len() as u64 != b.count) {
                return Err(corrupt(format!(
                    "the block of vector {first_id} of '{name}' does not follow the one before it"
                )));
            }
            next_row += b.count;
        }
        if next_row != rows {
            return Err(corrupt(format!(
                "the blocks of '{name}' hold {next_row} rows, the collection {rows}"
            )));
        }
        let bytes = rows * stride(dim) as u64;
        let map = if rows == 0 {
            None
        } else {
            let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
            let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
            if len < bytes {
                return Err(corrupt(format!(
                    "holds {len} bytes, fewer than the {bytes} of the {rows} vectors of '{name}' \
                     (the file was truncated)"
                )));
            }
            // SAFETY: the mapped range is rows that were made durable before redb
            // committed them; a writer never modifies them again (it appends past
            // them, and compaction writes a new file), so the memory stays valid.
            let map = unsafe {
                memmap2::MmapOptions::new()
                    .len(bytes as usize)
                    .map(&file)
                    .map_err(|e| Error::io(&path, e))?
            };
            Some(map)
        };
        let words = rows.div_ceil(64) as usize;
        let mut verified: Vec<AtomicU64> = (0..words).map(|_| AtomicU64::new(0)).collect();
        if let Some(p) = previous.filter(|p| p.epoch == epoch && p.rows <= rows) {
            let full = (p.rows / 64) as usize;
            for (dst, src) in verified.iter_mut().zip(&p.verified).take(full) {
                *dst.get_mut() = src.load(Ordering::Relaxed);
            }
        }
        Ok(Packed {
            epoch,
            rows,
            cid,
            dim,
            name: name.to_string(),
            path,
            map,
            blocks,
            verified,
        })
    }

    /// Number of rows.
    pub(crate) fn rows(&self) -> u64 {
        self.rows
    }

    /// Path of the file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn block_at_row(&self, row: u64) -> &(u64, Block) {
        let i = self.blocks.partition_point(|(_, b)| b.first_row <= row);
        &self.blocks[i - 1]
    }

    /// The id stored at `row` (< [`Packed::rows`]).
    pub(crate) fn id_of(&self, row: u64) -> u64 {
        let (first_id, b) = self.block_at_row(row);
        b.id_at(*first_id, row - b.first_row)
    }

    /// The row of `id`, if the file holds it.
    pub(crate) fn row_of(&self, id: u64) -> Option<u64> {
        let i = self.blocks.partition_point(|(f, _)| *f <= id);
        let (first_id, b) = self.blocks.get(i.checked_sub(1)?)?;
        b.row_of(*first_id, id)
    }

    /// The raw bytes of `row` (vector and CRC), unverified.
    pub(crate) fn row_bytes(&self, row: u64) -> &[u8] {
        let s = stride(self.dim);
        let map = self.map.as_ref().expect("rows exist");
        let start = row as usize * s;
        &map[start..start + s]
    }

    /// The vector of `id` at `row`, its CRC-32 checked (once per row).
    pub(crate) fn vector(&self, row: u64, id: u64) -> Result<&[f32]> {
        let bytes = self.row_bytes(row);
        let (word, bit) = ((row / 64) as usize, 1u64 << (row % 64));
        if self.verified[word].load(Ordering::Relaxed) & bit == 0 {
            if !codec::keyed_crc_ok((self.cid, id), bytes) {
                return Err(Error::Corrupted {
                    path: self.path.clone(),
                    message: format!(
                        "vector {id} (row {row}) of '{}' fails its checksum",
                        self.name
                    ),
                });
            }
            self.verified[word].fetch_or(bit, Ordering::Relaxed);
        }
        bytemuck::try_cast_slice(&bytes[..4 * self.dim]).map_err(|e| Error::Corrupted {
            path: self.path.clone(),
            message: format!("row {row} is not aligned ({e})"),
        })
    }

    /// The id and verified vector at `row`.
    pub(crate) fn vector_at(&self, row: u64) -> Result<(u64, &[f32])> {
        let id = self.id_of(row);
        Ok((id, self.vector(row, id)?))
    }
}

/// Writes a new packed file from verified rows in id order (compaction, migration):
/// blocks of up to [`COMPACT_BLOCK_ROWS`] rows, listing their ids when not contiguous.
pub(crate) struct FileWriter {
    path: PathBuf,
    stride: usize,
    bytes: Vec<u8>,
    ids: Vec<u64>,
    rows: u64,
    blocks: Vec<(u64, Block)>,
}

impl FileWriter {
    /// Start the file at `path` (any earlier file there is replaced).
    pub(crate) fn create(path: PathBuf, dim: usize) -> Result<FileWriter> {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&path, e)),
            _ => {}
        }
        Ok(FileWriter {
            path,
            stride: stride(dim),
            bytes: Vec::new(),
            ids: Vec::new(),
            rows: 0,
            blocks: Vec::new(),
        })
    }

    /// Append one encoded row (vector and keyed CRC) of `id`.
    pub(crate) fn push(&mut self, id: u64, row: &[u8]) -> Result<()> {
        debug_assert_eq!(row.len(), self.stride);
        self.bytes.extend_from_slice(row);
        self.ids.push(id);
        if self.ids.len() == COMPACT_BLOCK_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.ids.is_empty() {
            return Ok(());
        }
        write_rows(&self.path, self.stride, self.rows, &self.bytes)?;
        let n = self.ids.len() as u64;
        let contiguous = self.ids[self.ids.len() - 1] - self.ids[0] + 1 == n;
        self.blocks.push((
            self.ids[0],
            Block {
                first_row: self.rows,
                count: n,
                ids: if contiguous {
                    Vec::new()
                } else {
                    self.ids.clone()
                },
            },
        ));
        self.rows += n;
        self.ids.clear();
        self.bytes.clear();
        Ok(())
    }

    /// Make the file durable; returns its rows and blocks (for redb to name).
    pub(crate) fn finish(mut self) -> Result<(u64, Vec<(u64, Block)>)> {
        self.flush()?;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            crate::index::sync_dir(dir)?;
        }
        Ok((self.rows, self.blocks))
    }
}
