//! Whole-store operations, which must know every table of both layers (the vector
//! engine's and the catalog's): the public constructors (`open`: they hand the engine
//! the catalog's tables to make in a new store and the schema-1 migration to run on an
//! old one), `check_store` (`check`: verify everything, writing nothing), `Store::backup`
//! (`backup`: a consistent, verified, salvaging copy from one read snapshot, beside an
//! active writer), `repair_store` (`check`'s private copy, recovered, then backed up) and the in-place migration of schema-1 stores (`migrate`).

mod backup;
mod check;
mod migrate;
mod open;

use redb::TableDefinition;

use crate::catalog::tables::{DOMAINS, MODELS, READOUTS, SAMPLE_IMAGES, SAMPLES, SPOT_SETS};
use crate::engine::tables::COLLECTIONS;

/// The string-keyed tables whose values are a record followed by its CRC-32: what
/// `backup` copies after checking each value and `migrate` rewrites, one list for both.
const CRC_STR_TABLES: [TableDefinition<&str, &[u8]>; 7] = [
    COLLECTIONS,
    MODELS,
    SAMPLES,
    SAMPLE_IMAGES,
    SPOT_SETS,
    DOMAINS,
    READOUTS,
];

pub use backup::BackupReport;
pub use check::{CheckReport, check_store, rebuild_indexes, repair_store};
