//! Bounds on everything a file or an argument can make vortexdb allocate or loop over.
//!
//! Every size read from a file (an NPY shape, TIFF or PNG dimensions, a transforms
//! frame, spot coordinates) goes through [`checked_bytes`] (checked arithmetic, so a
//! product cannot wrap) and [`within_budget`] (the memory it would take against the
//! process's budget) before anything is allocated; every numeric argument goes
//! through one of the range checks here. Files whose payload is stored uncompressed
//! are also checked against their own length by their readers.

use crate::error::{Error, Result};

/// Environment variable overriding the memory budget (bytes, or with a K/M/G suffix).
pub const BUDGET_ENV: &str = "VORTEX_MEMORY_BUDGET";

/// Most intra-op threads accepted (above this, threads only add overhead).
pub const MAX_THREADS: usize = 1024;
/// Most results per query (`--k`, `--top`).
pub const MAX_K: usize = 1_000_000;
/// Largest HNSW candidate list (`--ef`).
pub const MAX_EF: usize = 1_000_000;
/// HNSW `M` range (links per node; hnswlib recommends 2-100).
pub const M_RANGE: (usize, usize) = (2, 256);
/// Most k-means restarts.
pub const MAX_RESTARTS: usize = 1000;
/// Most k-means clusters (domain labels are written as uint8 label volumes).
pub const MAX_DOMAINS: usize = 255;
/// Voxel / pixel sizes accepted, in micrometres.
pub const UM_RANGE: (f64, f64) = (1e-3, 1e5);

/// The memory budget in bytes: `VORTEX_MEMORY_BUDGET` when set, else half of the
/// machine's physical memory (16 GiB when it cannot be read).
pub fn memory_budget() -> u64 {
    if let Some(b) = std::env::var(BUDGET_ENV).ok().and_then(|v| parse_bytes(&v)) {
        return b;
    }
    total_memory().map(|t| t / 2).unwrap_or(16 << 30)
}

fn total_memory() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// Parse `123`, `64K`, `512M`, `2G` (binary units) into bytes.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1u64 << 10),
        'm' | 'M' => (&s[..s.len() - 1], 1 << 20),
        'g' | 'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

/// `dims` multiplied together and by `elem` bytes, with every step checked: an error
/// naming `path` when the product does not fit in 64 bits.
pub fn checked_bytes(path: &str, dims: &[u64], elem: u64) -> Result<u64> {
    let mut n = elem;
    for &d in dims {
        n = n.checked_mul(d).ok_or_else(|| {
            Error::bad_file(
                path,
                format!("declared size {dims:?} overflows (absurd dimensions)"),
            )
        })?;
    }
    Ok(n)
}

/// Refuse to allocate `bytes` for `what` when it exceeds the memory budget.
pub fn within_budget(path: &str, bytes: u64, what: &str) -> Result<usize> {
    let budget = memory_budget();
    if bytes > budget {
        let from = if std::env::var_os(BUDGET_ENV).is_some() {
            format!("set by {BUDGET_ENV}")
        } else {
            format!("half of this machine's memory; set {BUDGET_ENV} to change it")
        };
        return Err(Error::bad_file(
            path,
            format!(
                "{what} would need {} of memory, more than the budget of {} ({from})",
                human(bytes),
                human(budget)
            ),
        ));
    }
    usize::try_from(bytes).map_err(|_| Error::bad_file(path, format!("{what} is too large")))
}

/// `dims` x `elem` bytes, checked for overflow and against the budget.
pub fn alloc_bytes(path: &str, dims: &[u64], elem: u64, what: &str) -> Result<usize> {
    within_budget(path, checked_bytes(path, dims, elem)?, what)
}

/// Bytes for people: `1.5 GiB`.
pub fn human(b: u64) -> String {
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} bytes")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// The rule of one numeric argument: the name a user types (the CLI flag without
/// `--`, the Python keyword, the library field) and the range accepted.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ArgRule {
    /// Key in [`ARG_RULES`]; the part after the last `.` is the name shown to users.
    pub key: &'static str,
    /// Lowest value accepted.
    pub lo: f64,
    /// Highest value accepted.
    pub hi: f64,
    /// Whether the argument is a whole number.
    pub integer: bool,
    /// Where it is used, for the table in docs/CLI.md.
    pub used_by: &'static str,
}

const fn int(key: &'static str, lo: f64, hi: f64, used_by: &'static str) -> ArgRule {
    ArgRule {
        key,
        lo,
        hi,
        integer: true,
        used_by,
    }
}

const fn real(key: &'static str, lo: f64, hi: f64, used_by: &'static str) -> ArgRule {
    ArgRule {
        key,
        lo,
        hi,
        integer: false,
        used_by,
    }
}

/// Every numeric argument's range, in one table: every command, library call and the
/// Python package check their arguments against it (through `count` and `number`),
/// so the same value is accepted or refused everywhere. docs/CLI.md ("Argument limits")
/// prints it, and a test keeps the two equal.
pub const ARG_RULES: &[ArgRule] = &[
    int(
        "batch",
        1.0,
        65_536.0,
        "ingest volume|sections|image|hest|spots, vectors import",
    ),
    int(
        "downsample",
        1.0,
        1_048_576.0,
        "query, predict --volumes, domains --out, export",
    ),
    int(
        "slices",
        0.0,
        1000.0,
        "query, predict, domains (PNG slices written)",
    ),
    int("top", 1.0, MAX_K as f64, "query genes|profile|patch"),
    int("k", 1.0, MAX_K as f64, "vectors search, search calls"),
    int(
        "ef",
        0.0,
        MAX_EF as f64,
        "vectors search (0: the collection's default)",
    ),
    int(
        "m",
        M_RANGE.0 as f64,
        M_RANGE.1 as f64,
        "vectors import, new collections",
    ),
    int(
        "ef_construction",
        1.0,
        100_000.0,
        "vectors import, new collections",
    ),
    int("knn", 1.0, 100_000.0, "predict|eval|export --knn"),
    int("domains.k", 1.0, MAX_DOMAINS as f64, "domains --k"),
    int("restarts", 1.0, MAX_RESTARTS as f64, "domains"),
    int("max_iter", 1.0, 100_000.0, "domains"),
    real(
        "um",
        UM_RANGE.0,
        UM_RANGE.1,
        "--um-per-voxel, --um-per-px, --spacing-um",
    ),
    real("min_pcc", -1.0, 1.0, "query genes"),
    real("percentile", 0.0, 100.0, "query genes"),
    real("min_fraction", 0.0, 1.0, "query genes"),
];

/// The rule of `key` (a key of [`ARG_RULES`]).
pub fn rule(key: &str) -> &'static ArgRule {
    ARG_RULES
        .iter()
        .find(|r| r.key == key)
        .unwrap_or_else(|| panic!("no argument rule '{key}'"))
}

/// A whole-number argument checked against its rule in [`ARG_RULES`].
pub fn count(key: &str, v: usize) -> Result<usize> {
    count_as(key, key.rsplit('.').next().unwrap_or(key), v)
}

/// [`count`] for an argument that a face names `name` (`batch_size` of `vectors
/// import` follows the `batch` rule).
pub fn count_as(key: &str, name: &str, v: usize) -> Result<usize> {
    let r = rule(key);
    int_arg(name, v, r.lo as usize, r.hi as usize)
}

/// A number checked against its rule in [`ARG_RULES`] (finite, in range).
pub fn number(key: &str, name: &str, v: f64) -> Result<f64> {
    let r = rule(key);
    float_arg(name, v, r.lo, r.hi)
}

/// An integer argument in `lo..=hi`.
pub fn int_arg(name: &str, v: usize, lo: usize, hi: usize) -> Result<usize> {
    if v < lo || v > hi {
        return Err(Error::arg(
            name,
            format!("{v} is out of range (must be {lo} to {hi})"),
        ));
    }
    Ok(v)
}

/// A finite float argument in `lo..=hi`.
pub fn float_arg(name: &str, v: f64, lo: f64, hi: f64) -> Result<f64> {
    if !v.is_finite() || v < lo || v > hi {
        return Err(Error::arg(
            name,
            format!("{v} is out of range (must be a finite number from {lo} to {hi})"),
        ));
    }
    Ok(v)
}

/// A thread count: 0 (all cores) up to [`MAX_THREADS`], and at most 8 per core.
pub fn threads_arg(name: &str, v: usize) -> Result<usize> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let hi = (cores * 8).min(MAX_THREADS);
    if v > hi {
        return Err(Error::arg(
            name,
            format!("{v} threads on a machine with {cores} cores (at most {hi}; 0 = all cores)"),
        ));
    }
    Ok(v)
}

/// A voxel or pixel size in micrometres (finite, within [`UM_RANGE`]).
pub fn um_arg(name: &str, v: f64) -> Result<f64> {
    number("um", name, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_that_wrap_are_refused() {
        assert_eq!(checked_bytes("f", &[3, 4], 2).unwrap(), 24);
        assert!(checked_bytes("f", &[1 << 62, 8], 1).is_err());
        assert!(checked_bytes("f", &[u64::MAX, 1], 4).is_err());
        assert!(within_budget("f", u64::MAX, "x").is_err());
    }

    #[test]
    fn byte_sizes_parse() {
        assert_eq!(parse_bytes("512M"), Some(512 << 20));
        assert_eq!(parse_bytes("2g"), Some(2 << 30));
        assert_eq!(parse_bytes("100"), Some(100));
        assert_eq!(parse_bytes("x"), None);
        assert_eq!(parse_bytes("99999999999G"), None);
    }

    #[test]
    fn argument_ranges() {
        assert!(float_arg("p", f64::NAN, 0.0, 100.0).is_err());
        assert!(float_arg("p", 200.0, 0.0, 100.0).is_err());
        assert!(float_arg("p", 50.0, 0.0, 100.0).is_ok());
        assert!(threads_arg("threads", 100_000).is_err());
        assert!(threads_arg("threads", 0).is_ok());
        assert!(um_arg("um", 1e30).is_err());
        assert!(int_arg("m", 0, M_RANGE.0, M_RANGE.1).is_err());
    }
}
