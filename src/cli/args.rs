//! Option groups shared by several commands, and small parsers of flag values.

use clap::Args;

use vortexdb::{Device, Error, Result, RunOptions};

/// Execution provider and threads (ingest, models embed).
#[rustfmt::skip]
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Intra-op threads (0 = all cores).
    #[arg(long, default_value_t = 0)] pub threads: usize,
    /// Execution provider: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")] pub device: String,
}

impl RunArgs {
    /// The library's run options.
    pub fn options(&self) -> Result<RunOptions> {
        let device: Device = self.device.parse()?;
        Ok(RunOptions {
            device,
            threads: self.threads,
        })
    }
}

/// Volumes and PNG slices written (query heatmaps, predicted genes, domains).
#[rustfmt::skip]
#[derive(Debug, Args)]
pub struct VolumeOut {
    /// Model voxels per output voxel (default: the smallest keeping a volume under 64M
    /// voxels).
    #[arg(long)] pub downsample: Option<usize>,
    /// PNG slices per volume (evenly spaced, over the source image).
    #[arg(long, default_value_t = 3)] pub slices: usize,
    /// Also write each volume as an OME-Zarr image (NGFF 0.5; domains as NGFF labels)
    /// that napari opens next to the source.
    #[arg(long)] pub ome_zarr: bool,
}

impl VolumeOut {
    /// The ranges of `limits::ARG_RULES`, checked before any work or write.
    pub fn check(&self) -> Result<()> {
        if let Some(d) = self.downsample {
            vortexdb::check_count("downsample", d)?;
        }
        vortexdb::check_count("slices", self.slices).map(|_| ())
    }
}

/// Comma-separated values, trimmed, empty ones dropped.
pub fn split_list(s: Option<&str>) -> Vec<String> {
    s.unwrap_or("")
        .split(',')
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
        .collect()
}

/// Exactly `N` comma-separated values of `T` (`what` describes them in the error).
pub fn ints<const N: usize, T: std::str::FromStr>(
    s: &str,
    flag: &str,
    what: &str,
) -> Result<[T; N]> {
    let bad = || Error::arg(flag, format!("'{s}' is not {what}"));
    let v: Vec<T> = s
        .split(',')
        .map(|x| x.trim().parse::<T>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    v.try_into().map_err(|_| bad())
}

/// Exactly `N` comma-separated finite numbers.
pub fn floats<const N: usize>(s: &str, flag: &str) -> Result<[f64; N]> {
    let v: [f64; N] = ints(s, flag, &format!("{N} comma-separated numbers"))?;
    match v.iter().all(|x| x.is_finite()) {
        true => Ok(v),
        false => Err(Error::arg(
            flag,
            format!("'{s}': every number must be finite"),
        )),
    }
}
