//! Whole-store operations, which must know every table of both layers (the vector
//! engine's and the catalog's): the public constructors (`open`: they hand the engine
//! the catalog's tables to make in a new store and the schema-1 migration to run on an
//! old one), `Store::check` (`check`: verify everything), `Store::backup`
//! (`backup`: a consistent, verified copy from one read snapshot, beside an active
//! writer) and the in-place migration of schema-1 stores (`migrate`).

mod backup;
mod check;
mod migrate;
mod open;

pub use backup::BackupReport;
