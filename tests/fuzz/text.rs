//! Structured mutations of text formats: JSON (numbers and strings swapped for
//! hostile ones, members removed or replaced), delimited tables (cells, rows and
//! columns) and gzip-compressed tables (decompressed, mutated, recompressed).

use std::io::{Read, Write};

use crate::mutate::{EVIL_TEXT, Rng, interesting_int, mutate_generic, mutate_range};

// --- JSON --------------------------------------------------------------------------

/// Spans of number and string tokens in JSON text.
/// Byte ranges `(start, end)` of tokens.
type Spans = Vec<(usize, usize)>;

fn json_tokens(t: &[u8]) -> (Spans, Spans) {
    let (mut nums, mut strs) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < t.len() {
        match t[i] {
            b'"' => {
                let s = i;
                i += 1;
                while i < t.len() && t[i] != b'"' {
                    i += if t[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(t.len());
                strs.push((s, i));
            }
            b'-' | b'0'..=b'9' => {
                let s = i;
                while i < t.len() && matches!(t[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                nums.push((s, i));
            }
            _ => i += 1,
        }
    }
    (nums, strs)
}

const EVIL_NUMBERS: [&str; 18] = [
    "1e309",
    "-1",
    "-0",
    "0",
    "18446744073709551615",
    "18446744073709551616",
    "4294967296",
    "9007199254740993",
    "1e-400",
    "NaN",
    "Infinity",
    "-1e308",
    "0.5",
    "65537",
    "4097",
    "1025",
    "2147483648",
    "99999999999999999999999999",
];

const EVIL_STRINGS: [&str; 12] = [
    "\"..\"",
    "\"/abs\"",
    "\"\u{1F4A5}\"",
    "\"\"",
    "\"a/b\"",
    "\"\\u0000\"",
    "\"manifest.json\"",
    "\"\\ud800\"",
    "\"../../etc/passwd\"",
    "\".\"",
    "\"C:\\\\x\"",
    "\"-rf\"",
];

/// Every JSON pointer of `v`.
fn pointers(v: &serde_json::Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        serde_json::Value::Object(m) => {
            for (k, c) in m {
                let k = k.replace('~', "~0").replace('/', "~1");
                pointers(c, format!("{at}/{k}"), out);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                pointers(c, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

pub fn json(rng: &mut Rng, data: &mut Vec<u8>) -> bool {
    match rng.below(5) {
        0..=2 => {
            let (nums, strs) = json_tokens(data);
            let (spans, pool): (&[(usize, usize)], &[&str]) =
                if rng.chance(1, 2) && !nums.is_empty() {
                    (&nums, &EVIL_NUMBERS)
                } else if !strs.is_empty() {
                    (&strs, &EVIL_STRINGS)
                } else {
                    return false;
                };
            let &(a, b) = rng.pick(spans);
            let long;
            let rep = if rng.chance(1, 10) {
                long = format!("\"{}\"", "x".repeat(1 + rng.below(400)));
                long.as_str()
            } else {
                rng.pick(pool)
            };
            data.splice(a..b, rep.bytes());
            true
        }
        _ => {
            let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(data) else {
                return false;
            };
            let mut ps = Vec::new();
            pointers(&v, String::new(), &mut ps);
            let p = rng.pick(&ps).clone();
            let op = rng.below(8);
            if op == 0 && !p.is_empty() {
                // Remove the member or element.
                let (parent, last) = p.rsplit_once('/').expect("non-empty pointer");
                match v.pointer_mut(parent) {
                    Some(serde_json::Value::Object(m)) => {
                        m.remove(&last.replace("~1", "/").replace("~0", "~"));
                    }
                    Some(serde_json::Value::Array(a)) => {
                        if let Ok(i) = last.parse::<usize>()
                            && i < a.len()
                        {
                            a.remove(i);
                        }
                    }
                    _ => {}
                }
            } else if let Some(node) = v.pointer_mut(&p) {
                *node = match op {
                    1 => serde_json::Value::Null,
                    2 => serde_json::json!([]),
                    3 => serde_json::json!({}),
                    4 => match node {
                        serde_json::Value::Array(a) if !a.is_empty() => {
                            let x = a[0].clone();
                            let n = *rng.pick(&[2usize, 100, 70_000]);
                            serde_json::Value::Array(vec![x; n])
                        }
                        _ => serde_json::json!(u64::MAX),
                    },
                    5 => serde_json::json!(-1),
                    6 => serde_json::json!(1e300),
                    _ => serde_json::json!(rng.pick(&["..", "/abs", "\u{1F4A5}", ""])),
                };
            }
            *data = if rng.chance(1, 2) {
                serde_json::to_vec(&v).unwrap_or_default()
            } else {
                serde_json::to_vec_pretty(&v).unwrap_or_default()
            };
            true
        }
    }
}

// --- delimited text ----------------------------------------------------------------

pub fn table(rng: &mut Rng, data: &mut Vec<u8>, delim: u8) -> bool {
    let text = String::from_utf8_lossy(data).to_string();
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    if lines.is_empty() {
        return false;
    }
    let d = (delim as char).to_string();
    let d = d.as_str();
    let li = if rng.chance(1, 6) {
        0
    } else {
        rng.below(lines.len())
    };
    let split = |l: &str| -> Vec<String> {
        if delim == b' ' {
            l.split_whitespace().map(str::to_string).collect()
        } else {
            l.split(d).map(str::to_string).collect()
        }
    };
    match rng.below(12) {
        0..=3 => {
            let mut f = split(&lines[li]);
            if f.is_empty() {
                f.push(String::new());
            }
            let k = rng.below(f.len());
            f[k] = if rng.chance(1, 3) {
                interesting_int(rng).to_string()
            } else {
                rng.pick(&EVIL_TEXT).to_string()
            };
            lines[li] = f.join(d);
        }
        4 => {
            lines.remove(li);
        }
        5 => {
            let l = lines[li].clone();
            let n = if rng.chance(1, 8) { 1000 } else { 1 };
            for _ in 0..n {
                lines.insert(li, l.clone());
            }
        }
        6 => {
            let j = rng.below(lines.len());
            lines.swap(li, j);
        }
        7 => {
            let mut f = split(&lines[li]);
            let k = rng.below(f.len() + 1);
            f.insert(k, rng.pick(&EVIL_TEXT).to_string());
            lines[li] = f.join(d);
        }
        8 => {
            let mut f = split(&lines[li]);
            if !f.is_empty() {
                f.remove(rng.below(f.len()));
            }
            lines[li] = f.join(d);
        }
        9 => {
            let extra = match rng.below(4) {
                0 => "% comment".to_string(),
                1 => "%%MatrixMarket matrix array real general".to_string(),
                2 => format!("{0} {0} {0}", interesting_int(rng)),
                _ => "#".to_string(),
            };
            lines.insert(li, extra);
        }
        10 => {
            let s = lines.join("\r\n");
            *data = s.into_bytes();
            return true;
        }
        _ => {
            let l = &lines[li];
            let cut = rng.below(l.len() + 1);
            let cut = (0..=cut)
                .rev()
                .find(|&c| l.is_char_boundary(c))
                .unwrap_or(0);
            lines[li] = l[..cut].to_string();
            lines.truncate(li + 1);
        }
    }
    *data = lines.join("\n").into_bytes();
    true
}

pub fn gz(rng: &mut Rng, data: &mut Vec<u8>, delim: u8, other: &[u8]) -> bool {
    let mut plain = Vec::new();
    let ok = flate2::read::MultiGzDecoder::new(&data[..])
        .take(1 << 22)
        .read_to_end(&mut plain)
        .is_ok();
    if !ok || rng.chance(1, 4) {
        // The compressed bytes themselves: header, deflate stream, CRC / ISIZE trailer.
        let n = data.len();
        let (lo, hi) = match rng.below(3) {
            0 => (0, 10),
            1 => (n.saturating_sub(8), n),
            _ => (0, n),
        };
        mutate_range(rng, data, other, lo, hi);
        return true;
    }
    if !table(rng, &mut plain, delim) {
        mutate_generic(rng, &mut plain, &[]);
    }
    let level = flate2::Compression::new(rng.below(10) as u32);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), level);
    let _ = enc.write_all(&plain);
    *data = enc.finish().unwrap_or_default();
    if rng.chance(1, 10) {
        // A second gzip member, or trailing garbage.
        let tail = data.clone();
        data.extend_from_slice(&tail[..tail.len() / (1 + rng.below(2))]);
    }
    true
}
