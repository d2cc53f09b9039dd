//! Disk cost of vectors in redb (issue 19's design measurement): one value per vector,
//! as the store writes them today, against packed blocks of many vectors, before and
//! after `Database::compact`. Run:
//! `cargo bench --bench redb_layout -- N DIM per|blk [BLOCK_BYTES] [--compact]`
//! (a file of N x DIM x 4 bytes is written under the system temp directory and removed).

use redb::{Database, TableDefinition};

const PER: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("vectors");
const BLK: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("blocks");

fn main() {
    let a: Vec<String> = std::env::args().filter(|s| s != "--bench").collect();
    if a.len() < 4 {
        eprintln!("usage: redb_layout N DIM per|blk [BLOCK_BYTES] [--compact]");
        return;
    }
    let (n, d): (u64, usize) = (a[1].parse().expect("N"), a[2].parse().expect("DIM"));
    let packed = a[3] == "blk";
    let block_bytes: usize = a.get(4).and_then(|s| s.parse().ok()).unwrap_or(1 << 20);
    let compact = a.iter().any(|s| s == "--compact");
    let path = std::env::temp_dir().join(format!("redb-layout-{}.redb", std::process::id()));
    let mut db = Database::create(&path).expect("create");
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 40) as f32 / 16_777_216.0
    };
    let per_block = ((block_bytes - 256) / (4 * d)).max(1) as u64;
    let t = std::time::Instant::now();
    let mut id = 0u64;
    while id < n {
        // One durable transaction per batch of 10 000, as an import writes them.
        let end = (id + 10_000).min(n);
        let txn = db.begin_write().expect("write");
        {
            let mut tab = txn
                .open_table(if packed { BLK } else { PER })
                .expect("table");
            let mut s = id;
            while s < end {
                let e = if packed {
                    (s + per_block).min(end)
                } else {
                    s + 1
                };
                let mut buf = Vec::with_capacity(8 + (e - s) as usize * 4 * d);
                buf.extend_from_slice(&((e - s) as u32).to_le_bytes());
                for _ in 0..(e - s) as usize * d {
                    buf.extend_from_slice(&rnd().to_le_bytes());
                }
                let c = crc32fast::hash(&buf);
                buf.extend_from_slice(&c.to_le_bytes());
                tab.insert((1, s), buf.as_slice()).expect("insert");
                s = e;
            }
        }
        txn.commit().expect("commit");
        id = end;
    }
    let write_s = t.elapsed().as_secs_f64();
    let raw = (n * d as u64 * 4) as f64;
    let before = std::fs::metadata(&path).expect("stat").len();
    if compact {
        db.compact().expect("compact");
    }
    drop(db);
    let after = std::fs::metadata(&path).expect("stat").len();
    println!(
        "{} n={n} dim={d} per_block={} write {write_s:.1}s: file {before} B = {:.3}x raw; after compact: {after} B = {:.3}x",
        if packed { "blocks" } else { "per-vector" },
        if packed { per_block } else { 1 },
        before as f64 / raw,
        after as f64 / raw
    );
    let _ = std::fs::remove_file(&path);
}
