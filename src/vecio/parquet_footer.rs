//! A check of a Parquet footer before the parquet crate parses it.
//!
//! parquet 60 decodes the schema of the footer into a flat list, then builds the tree
//! with `Vec::with_capacity(num_children)` for every group, `num_children` as the file
//! states it (up to 2^31): a damaged footer aborts the process on that allocation. This
//! decodes the Thrift compact encoding of the footer as far as the end of the schema,
//! the way the parquet crate does (fields by their declared types; a field whose wire
//! type is not its declared type is refused here, so both read the same bytes), and
//! refuses a group that claims more children than the schema has elements.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::{Error, Result};

/// Values nested deeper than this are refused (the parquet crate skips at most 64).
const MAX_DEPTH: usize = 64;

/// Compact-protocol type codes.
const BOOL_TRUE: u8 = 1;
const BOOL_FALSE: u8 = 2;
const BYTE: u8 = 3;
const I32: u8 = 5;
const BINARY: u8 = 8;
const LIST: u8 = 9;
const STRUCT: u8 = 12;

/// The Thrift structs of the schema whose fields have declared types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Schema,
    Logical,
    Decimal,
    Time,
    Unit,
    Int,
    Variant,
    Geometry,
    Geography,
    /// An empty struct (a union variant without data): must hold no field.
    Empty,
    /// Anything else: skipped by wire types.
    Any,
}

/// What a field of a known struct must be on the wire.
enum Decl {
    Bool,
    Is(u8, Ctx),
}

/// The declared type of field `id` of `ctx` (parquet-format's `parquet.thrift`).
fn declared(ctx: Ctx, id: i16) -> Option<Decl> {
    use Ctx::*;
    use Decl::Is;
    Some(match (ctx, id) {
        (Schema, 1 | 2 | 3 | 5..=9) => Is(I32, Any),
        (Schema, 4) => Is(BINARY, Any),
        (Schema, 10) => Is(STRUCT, Logical),
        (Logical, 1..=4 | 6 | 11..=15 | 19) => Is(STRUCT, Empty),
        (Logical, 5) => Is(STRUCT, Decimal),
        (Logical, 7 | 8) => Is(STRUCT, Time),
        (Logical, 10) => Is(STRUCT, Int),
        (Logical, 16) => Is(STRUCT, Variant),
        (Logical, 17) => Is(STRUCT, Geometry),
        (Logical, 18) => Is(STRUCT, Geography),
        (Decimal, 1 | 2) | (Geography, 2) => Is(I32, Any),
        (Time, 1) | (Int, 2) => Decl::Bool,
        (Time, 2) => Is(STRUCT, Unit),
        (Unit, 1..=3) => Is(STRUCT, Empty),
        (Int, 1) | (Variant, 1) => Is(BYTE, Any),
        (Geometry, 1) | (Geography, 1) => Is(BINARY, Any),
        _ => return None,
    })
}

/// A cursor over Thrift compact-protocol bytes; every read is bounds-checked.
struct Skim<'a> {
    b: &'a [u8],
    depth: usize,
    /// `num_children` of every schema element seen (as parquet reads it, an i32).
    children: Vec<i32>,
}

impl Skim<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&x, rest) = self.b.split_first()?;
        self.b = rest;
        Some(x)
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let x = self.byte()?;
            v |= ((x & 0x7f) as u64) << shift;
            if x & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn zigzag(&mut self) -> Option<i64> {
        let v = self.varint()?;
        Some((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn skip(&mut self, n: u64) -> Option<()> {
        let n = usize::try_from(n).ok()?;
        self.b = self.b.get(n..)?;
        Some(())
    }

    /// A list or set header: (size, element type); the size must fit the bytes left.
    fn list_header(&mut self) -> Option<(u64, u8)> {
        let h = self.byte()?;
        if h == 0 {
            return Some((0, BYTE));
        }
        let n = match h >> 4 {
            15 => self.varint()?,
            n => n as u64,
        };
        (n <= self.b.len() as u64).then_some((n, h & 0x0f))
    }

    /// Skip one element of a list or map: bool elements take no bytes in the parquet
    /// crate's skip, so none here either.
    fn element(&mut self, t: u8) -> Option<()> {
        if t == BOOL_TRUE || t == BOOL_FALSE {
            Some(())
        } else {
            self.value(t)
        }
    }

    /// Skip one value of wire type `t`.
    fn value(&mut self, t: u8) -> Option<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        let r = match t {
            BOOL_TRUE | BOOL_FALSE => Some(()),
            BYTE => self.byte().map(|_| ()),
            4..=6 => self.varint().map(|_| ()),
            7 => self.skip(8),
            BINARY => {
                let n = self.varint()?;
                self.skip(n)
            }
            LIST | 10 => {
                let (n, et) = self.list_header()?;
                (0..n).try_for_each(|_| self.element(et))
            }
            11 => {
                let n = self.varint()?;
                if n > 0 {
                    let kv = self.byte()?;
                    if n > self.b.len() as u64 {
                        return None;
                    }
                    for _ in 0..n {
                        self.element(kv >> 4)?;
                        self.element(kv & 0x0f)?;
                    }
                }
                Some(())
            }
            STRUCT => self.fields(Ctx::Any),
            13 => self.skip(16),
            _ => None,
        };
        self.depth -= 1;
        r
    }

    /// Read the fields of a struct of kind `ctx` up to its stop byte.
    fn fields(&mut self, ctx: Ctx) -> Option<()> {
        let mut last = 0i16;
        loop {
            let h = self.byte()?;
            if h == 0 {
                return Some(());
            }
            if ctx == Ctx::Empty {
                return None;
            }
            let t = h & 0x0f;
            let id = match h >> 4 {
                0 => i16::try_from(self.zigzag()?).ok()?,
                d => last.checked_add(d as i16)?,
            };
            last = id;
            match declared(ctx, id) {
                Some(Decl::Bool) if t == BOOL_TRUE || t == BOOL_FALSE => {}
                Some(Decl::Is(want, _)) if t != want => return None,
                Some(Decl::Bool) => return None,
                Some(Decl::Is(_, child)) if t == STRUCT => {
                    self.depth += 1;
                    if self.depth > MAX_DEPTH {
                        return None;
                    }
                    self.fields(child)?;
                    self.depth -= 1;
                }
                _ if ctx == Ctx::Schema && id == 5 => {
                    let c = self.zigzag()?;
                    self.children.push(c as i32);
                }
                _ => self.value(t)?,
            }
        }
    }

    /// FileMetaData up to the end of its schema (field 2, `list<SchemaElement>`),
    /// which writers put first, after the version (field 1): the number of elements.
    fn file_schema(&mut self) -> Option<u64> {
        let mut h = self.byte()?;
        // Field 1 (an i32, id delta 1), then field 2 (a list) as an id delta from the
        // last id, or as a full id.
        let mut delta_to_schema = 0x29;
        if h == 0x15 {
            self.varint()?;
            h = self.byte()?;
            delta_to_schema = 0x19;
        }
        let is_schema = match h {
            0x09 => self.zigzag()? == 2,
            h => h == delta_to_schema,
        };
        if !is_schema {
            return None;
        }
        let (n, et) = self.list_header()?;
        if et != STRUCT {
            return None;
        }
        for _ in 0..n {
            self.fields(Ctx::Schema)?;
        }
        Some(n)
    }
}

/// Check the footer of the Parquet file at `path` (see the module documentation).
pub(crate) fn check(path: &Path) -> Result<()> {
    let p = path.display().to_string();
    let bad = |m: String| Error::bad_file(&p, m);
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    if len < 12 {
        return Err(bad(format!("not a Parquet file ({len} bytes)")));
    }
    let mut tail = [0u8; 8];
    f.seek(SeekFrom::Start(len - 8))
        .and_then(|_| f.read_exact(&mut tail))
        .map_err(|e| Error::io(path, e))?;
    if &tail[4..] != b"PAR1" {
        // Not a plain footer (e.g. encrypted): left to the parquet crate to refuse.
        return Ok(());
    }
    let meta_len = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as u64;
    if meta_len + 12 > len {
        return Err(bad(format!(
            "damaged Parquet footer: {meta_len} bytes of metadata in a file of {len}"
        )));
    }
    let n = crate::limits::within_budget(&p, meta_len, "the Parquet footer")?;
    let mut meta = vec![0u8; n];
    f.seek(SeekFrom::Start(len - 8 - meta_len))
        .and_then(|_| f.read_exact(&mut meta))
        .map_err(|e| Error::io(path, e))?;
    let mut s = Skim {
        b: &meta,
        depth: 0,
        children: Vec::new(),
    };
    let Some(elements) = s.file_schema() else {
        return Err(bad(
            "damaged Parquet footer: its schema cannot be decoded".into()
        ));
    };
    if let Some(c) = s
        .children
        .iter()
        .find(|&&c| c as u64 >= elements.max(1) && c > 0)
    {
        return Err(bad(format!(
            "damaged Parquet footer: a schema group claims {c} children, the schema has {elements} elements"
        )));
    }
    Ok(())
}

/// The sizes a page header declares: (page type, uncompressed size, dictionary values).
fn page_header(s: &mut Skim) -> Option<(i64, i64, Option<i64>)> {
    let (mut kind, mut size, mut dict) = (None, None, None);
    let mut last = 0i16;
    loop {
        let h = s.byte()?;
        if h == 0 {
            return Some((kind?, size?, dict));
        }
        let t = h & 0x0f;
        let id = match h >> 4 {
            0 => i16::try_from(s.zigzag()?).ok()?,
            d => last.checked_add(d as i16)?,
        };
        last = id;
        match (id, t) {
            (1, I32) => kind = Some(s.zigzag()?),
            (2, I32) => size = Some(s.zigzag()?),
            // DictionaryPageHeader: field 1 is num_values.
            (7, STRUCT) => {
                let mut inner_last = 0i16;
                loop {
                    let h = s.byte()?;
                    if h == 0 {
                        break;
                    }
                    let t = h & 0x0f;
                    let id = match h >> 4 {
                        0 => i16::try_from(s.zigzag()?).ok()?,
                        d => inner_last.checked_add(d as i16)?,
                    };
                    inner_last = id;
                    if (id, t) == (1, I32) {
                        dict = Some(s.zigzag()?);
                    } else {
                        s.value(t)?;
                    }
                }
            }
            _ => s.value(t)?,
        }
    }
}

/// Check the first page header of a column chunk at `offset` (a dictionary page, when
/// the chunk has one): parquet 60 reserves room for as many dictionary entries as the
/// header claims and reads as many bytes as its uncompressed size says, so both are
/// bounded here: the size by the memory budget, the entries by the size (a PLAIN
/// dictionary entry takes at least one byte). A header that cannot be decoded is
/// refused.
pub(crate) fn check_first_page(path: &Path, f: &mut std::fs::File, offset: u64) -> Result<()> {
    let p = path.display().to_string();
    let mut buf = vec![0u8; 4096];
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| Error::io(path, e))?;
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]).map_err(|e| Error::io(path, e))? {
            0 => break,
            k => n += k,
        }
    }
    let mut s = Skim {
        b: &buf[..n],
        depth: 0,
        children: Vec::new(),
    };
    // A header this strict decoder cannot read is refused: the parquet crate's own
    // reader is laxer (it accepts over-long varints, for one) and would read sizes from it.
    let Some((kind, size, dict)) = page_header(&mut s) else {
        return Err(Error::bad_file(
            &p,
            format!("damaged Parquet page header at byte {offset}"),
        ));
    };
    if size < 0 {
        return Err(Error::bad_file(
            &p,
            format!("damaged Parquet page at byte {offset}: negative size {size}"),
        ));
    }
    crate::limits::within_budget(&p, size as u64, "a Parquet page")?;
    // Page type 2 is DICTIONARY_PAGE.
    if let (2, Some(values)) = (kind, dict)
        && (values < 0 || values > size.max(1))
    {
        return Err(Error::bad_file(
            &p,
            format!(
                "damaged Parquet dictionary page at byte {offset}: {values} entries in {size} bytes"
            ),
        ));
    }
    Ok(())
}
