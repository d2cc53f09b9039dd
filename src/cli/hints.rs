//! Error messages for the command line: library parameter names become flags
//! (`min_pcc` -> `--min-pcc`), and each error that has a next step gets it.

use vortexdb::Error;

/// The flag of a library parameter.
pub fn flag(name: &str) -> String {
    // Only a parameter name becomes a flag; a file name or a phrase stays as it is.
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return name.to_string();
    }
    let f = match name {
        "spot_samples" => "spots-from",
        "samples" => "sample",
        "within" => "in",
        other => return format!("--{}", other.replace('_', "-")),
    };
    format!("--{f}")
}

/// The message the CLI prints for `e`: flags for parameters, then the next step.
pub fn message(e: &Error) -> String {
    let text = e.to_string();
    let text = match e {
        Error::InvalidArgument { name, .. }
        | Error::UnknownSample { name, .. }
        | Error::UnknownGenes { name, .. } => match text.strip_prefix(&format!("{name}: ")) {
            Some(rest) => format!("{}: {rest}", flag(name)),
            None => text,
        },
        _ => text,
    };
    match hint(e) {
        Some(h) => format!("{text}; {h}"),
        None => text,
    }
}

/// Exit code 1 for bad input or environment (the message says what to change), else 2.
pub fn exit_code(e: &Error) -> u8 {
    if e.is_internal() { 2 } else { 1 }
}

/// The next step for an error, when there is one.
pub fn hint(e: &Error) -> Option<String> {
    Some(match e {
        Error::NotAStore { path, .. } => {
            format!("create one with `vortexdb init {}`", path.display())
        }
        Error::Corrupted { .. } => "`vortexdb check STORE` lists the damage without writing \
                                   anything; then copy what is readable with `vortexdb \
                                   backup STORE NEW` (or `vortexdb repair STORE NEW`), or \
                                   restore an earlier backup"
            .into(),
        Error::UnknownModel { store, .. } => format!(
            "add one with `vortexdb models add {} MODEL_DIR`",
            store.display()
        ),
        Error::NoModel { store } => format!(
            "add the built-in one with `vortexdb models add {} default` (or a model \
             directory), or pass --model DIR",
            store.display()
        ),
        Error::OutputExists { can_overwrite, .. } => match can_overwrite {
            true => "choose another --out or pass --force".into(),
            false => "choose another --out".into(),
        },
        Error::AmbiguousModel { .. } => "choose one with --model NAME".into(),
        Error::Device(_) => "or use --device cpu".into(),
        Error::InvalidArgument { name, .. } => match name.as_str() {
            "format" => "pass --format her2st|visium|parquet".into(),
            "positions" => "pass --positions FILE".into(),
            "target" => "add 3D patches with `vortexdb ingest volume|sections` or 2D ones \
                         with `vortexdb ingest image`"
                .into(),
            _ => return None,
        },
        Error::NothingSelected { stage, .. } => match *stage {
            "spot_qc" => "lower --min-genes or raise --max-mito".into(),
            "gene_filter" => "lower --percentile or --min-fraction".into(),
            "spots" => "ingest some with `vortexdb ingest spots`".into(),
            "patches" => "ingest a volume first".into(),
            "patch_grid" => "give the right --um-per-voxel or a larger volume".into(),
            "domains" => "run `vortexdb domains STORE --sample SAMPLE` first".into(),
            _ => return None,
        },
        _ => return None,
    })
}
