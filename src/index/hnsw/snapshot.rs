//! Snapshot serialisation of the graph: header (with the space's kind), ids, levels,
//! links and the space's parameters and codes in one stream with a CRC-32 footer;
//! reading checks sizes and structure before use.

use std::io::{Read, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::{Graph, MAX_LEVEL, NO_ENTRY, Space, has_fma};

const MAGIC: &[u8; 8] = b"VXHNSW02";

impl<S: Space> Graph<S> {
    /// Serialise the graph; returns bytes written and the CRC-32 of the file.
    pub(crate) fn write_to(&self, w: &mut impl Write) -> std::io::Result<(u64, u32)> {
        let mut h = HashingWriter {
            inner: w,
            hasher: crc32fast::Hasher::new(),
            len: 0,
        };
        h.write_all(MAGIC)?;
        h.write_all(&[S::KIND])?;
        for v in [self.space.dim(), self.m, self.m0, self.ef_construction] {
            h.write_all(&(v as u32).to_le_bytes())?;
        }
        h.write_all(&(self.ids.len() as u64).to_le_bytes())?;
        h.write_all(&self.seed.to_le_bytes())?;
        h.write_all(&self.entry.load(Ordering::Acquire).to_le_bytes())?;
        h.write_all(bytemuck::cast_slice(&self.ids))?;
        h.write_all(&self.levels)?;
        let mut tmp: Vec<u32> = Vec::with_capacity(1 << 16);
        for chunk in self.layer0.chunks(1 << 16) {
            tmp.clear();
            tmp.extend(chunk.iter().map(|a| a.load(Ordering::Acquire)));
            h.write_all(bytemuck::cast_slice(&tmp))?;
        }
        for list in &self.upper {
            tmp.clear();
            tmp.extend(list.iter().map(|a| a.load(Ordering::Acquire)));
            h.write_all(bytemuck::cast_slice(&tmp))?;
        }
        self.space.write(&mut h)?;
        let crc = h.hasher.clone().finalize();
        let len = h.len;
        h.inner.write_all(&crc.to_le_bytes())?;
        Ok((len + 4, crc))
    }

    /// Read a graph written by [`Graph::write_to`]; `Err` with a reason on any damage
    /// (bad magic, impossible sizes, short file, checksum mismatch).
    pub(crate) fn read_from(r: &mut impl Read, file_len: u64) -> Result<(Self, u32), String> {
        let mut h = HashingReader {
            inner: r,
            hasher: crc32fast::Hasher::new(),
        };
        let mut magic = [0u8; 8];
        h.read_exact(&mut magic)
            .map_err(|e| format!("header: {e}"))?;
        if &magic != MAGIC {
            return Err("not a vortexdb graph file of this version (bad magic)".into());
        }
        let mut kind = [0u8; 1];
        h.read_exact(&mut kind)
            .map_err(|e| format!("header: {e}"))?;
        if kind[0] == 1 {
            return Err(
                "an int8 graph of the earlier format (codes fitted to the first \
                        batch; int8 codes are now per vector)"
                    .into(),
            );
        }
        if kind[0] != S::KIND {
            return Err(format!(
                "graph of representation {} where {} was expected",
                kind[0],
                S::KIND
            ));
        }
        let mut u32s = [0u32; 4];
        for x in &mut u32s {
            *x = read_u32(&mut h)?;
        }
        let [dim, m, m0, efc] = u32s.map(|x| x as usize);
        let n = read_u64(&mut h)? as usize;
        let seed = read_u64(&mut h)?;
        let entry = read_u64(&mut h)?;
        // The ranges a store accepts for M and ef_construction: a larger ef would size
        // every insert's candidate heaps by it.
        let (m_lo, m_hi) = crate::limits::M_RANGE;
        if dim == 0
            || !(m_lo..=m_hi).contains(&m)
            || m0 != 2 * m
            || !(1..=100_000).contains(&efc)
            || n > u32::MAX as usize
        {
            return Err(format!(
                "impossible header (dim {dim}, m {m}, m0 {m0}, ef_construction {efc}, n {n})"
            ));
        }
        // Sizes must fit the file before anything large is allocated (checked: a
        // damaged header must not wrap the product).
        let per_node = (4 * (m0 as u64 + 1))
            .checked_add(S::node_bytes(dim) as u64)
            .and_then(|b| b.checked_add(8 + 1));
        let fixed = per_node
            .and_then(|b| b.checked_mul(n as u64))
            .and_then(|b| b.checked_add(8 + 1 + 16 + 24 + 4 + S::param_bytes(dim) as u64));
        if fixed.is_none_or(|f| f > file_len) {
            return Err(format!("file too short for {n} nodes ({file_len} bytes)"));
        }
        let mut ids = vec![0u64; n];
        read_exact(&mut h, bytemuck::cast_slice_mut(&mut ids))?;
        let mut levels = vec![0u8; n];
        read_exact(&mut h, &mut levels)?;
        if levels.iter().any(|&l| l as usize > MAX_LEVEL) {
            return Err("level out of range".into());
        }
        let mut l0 = vec![0u32; n * (m0 + 1)];
        read_exact(&mut h, bytemuck::cast_slice_mut(&mut l0))?;
        let mut upper = Vec::with_capacity(n);
        let mut tmp = Vec::new();
        for &l in &levels {
            tmp.resize(l as usize * (m + 1), 0u32);
            read_exact(&mut h, bytemuck::cast_slice_mut(&mut tmp))?;
            upper.push(
                tmp.iter()
                    .map(|&x| AtomicU32::new(x))
                    .collect::<Box<[AtomicU32]>>(),
            );
        }
        let space = S::read(&mut h, dim, n)?;
        let crc = h.hasher.clone().finalize();
        let stored = read_u32(&mut h.inner)?;
        if stored != crc {
            return Err(format!(
                "checksum mismatch (footer {stored:08x}, content {crc:08x})"
            ));
        }
        // Structural checks so a graph walk can never index out of bounds.
        let bad_list = |list: &[u32], cap: usize| {
            let c = list[0] as usize;
            c > cap || list[1..=c].iter().any(|&x| x as usize >= n)
        };
        if l0.chunks(m0 + 1).any(|l| bad_list(l, m0)) {
            return Err("layer-0 link out of range".into());
        }
        for u in &upper {
            let vals: Vec<u32> = u.iter().map(|a| a.load(Ordering::Relaxed)).collect();
            if vals.chunks(m + 1).any(|l| bad_list(l, m)) {
                return Err("upper-layer link out of range".into());
            }
        }
        if entry != NO_ENTRY {
            let (e, lv) = (entry as u32 as usize, (entry >> 32) as usize);
            if e >= n || levels[e] as usize != lv {
                return Err("entry point out of range".into());
            }
        } else if n > 0 {
            return Err("nodes without an entry point".into());
        }
        let g = Graph {
            space,
            m,
            m0,
            ef_construction: efc,
            seed,
            fma: has_fma(),
            ids,
            levels,
            layer0: l0.into_iter().map(AtomicU32::new).collect(),
            upper,
            locks: (0..n).map(|_| Mutex::new(())).collect(),
            entry: AtomicU64::new(entry),
            entry_lock: Mutex::new(()),
        };
        Ok((g, crc))
    }
}

struct HashingWriter<'a, W: Write> {
    inner: &'a mut W,
    hasher: crc32fast::Hasher,
    len: u64,
}

impl<W: Write> Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

struct HashingReader<'a, R: Read> {
    inner: &'a mut R,
    hasher: crc32fast::Hasher,
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn read_exact(r: &mut impl Read, buf: &mut [u8]) -> Result<(), String> {
    r.read_exact(buf).map_err(|e| format!("truncated ({e})"))
}

fn read_u32(r: &mut impl Read) -> Result<u32, String> {
    let mut b = [0u8; 4];
    read_exact(r, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_u64(r: &mut impl Read) -> Result<u64, String> {
    let mut b = [0u8; 8];
    read_exact(r, &mut b)?;
    Ok(u64::from_le_bytes(b))
}
