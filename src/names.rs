//! Names that reach the file system, in one place.
//!
//! Sample ids and model names become keys and directory names, so they are validated
//! ([`valid_id`]): they can never be `.`, `..`, hidden, absolute or hold a separator.
//! Gene names come from manifests and count files and are mapped to safe file names
//! ([`file_stem`]) wherever an output file is named after one.

use crate::error::{Error, Result};

/// Check a name that becomes a key and a file or directory name (sample ids, model
/// names): 1-128 ASCII letters, digits, `-`, `_`, `.`, starting with a letter or digit.
pub fn valid_id(id: &str, what: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !ok {
        return Err(Error::arg(
            what,
            format!(
                "{id:?} is not a valid name (1-128 letters, digits, - _ ., starting with a letter or digit)"
            ),
        ));
    }
    Ok(())
}

/// A file-name stem for a gene (or any free-text name): ASCII letters, digits, `-`,
/// `_` and `.` are kept, everything else (separators, `..`, control and non-ASCII
/// characters) becomes `_`; a leading `.` becomes `_`; at most 100 characters. Two
/// names that map to one stem are told apart by [`unique_stems`].
pub fn file_stem(name: &str) -> String {
    let mut s: String = name
        .chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        s.insert(0, '_');
    }
    s
}

/// [`file_stem`] of every name, with `~2`, `~3`, ... appended where two names map to
/// the same stem (compared case-insensitively, for case-insensitive file systems).
pub fn unique_stems(names: &[&str]) -> Vec<String> {
    let mut seen = std::collections::HashMap::<String, usize>::new();
    names
        .iter()
        .map(|n| {
            let stem = file_stem(n);
            let count = seen.entry(stem.to_ascii_lowercase()).or_insert(0);
            *count += 1;
            if *count == 1 {
                stem
            } else {
                format!("{stem}~{count}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_escape_are_refused() {
        for bad in [
            "", ".", "..", ".hidden", "a/b", "../../x", "/abs", "a\nb", "💥", "-x",
        ] {
            assert!(valid_id(bad, "sample").is_err(), "{bad:?} accepted");
        }
        for good in ["C1", "ph2", "vortex-tiny-phantom", "a.b_c-1"] {
            assert!(valid_id(good, "sample").is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn gene_stems_stay_in_their_directory() {
        assert_eq!(file_stem("ERBB2"), "ERBB2");
        assert_eq!(file_stem("../../x"), "_.._.._x");
        assert_eq!(file_stem("/abs/path/x"), "_abs_path_x");
        assert_eq!(file_stem(".."), "_..");
        assert_eq!(file_stem("💥"), "_");
        assert_eq!(file_stem(""), "_");
        for n in ["../../x", "/abs/path/x", "..", ".", "a/../../b", "x\0y"] {
            let s = file_stem(n);
            assert!(
                !s.contains('/') && !s.starts_with('.') && s != "..",
                "{n:?} -> {s}"
            );
        }
        assert_eq!(
            unique_stems(&["a/b", "a_b", "A_B"]),
            ["a_b", "a_b~2", "A_B~3"]
        );
    }
}
