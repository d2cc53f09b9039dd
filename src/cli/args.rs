//! Option groups shared by several commands, and small parsers of flag values.

use clap::Args;

use vortexdb::{Device, Error, Result, RunOptions};

/// Execution provider and threads (ingest, models embed).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Intra-op threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Execution provider: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
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

/// Comma-separated values, trimmed, empty ones dropped.
pub fn split_list(s: Option<&str>) -> Vec<String> {
    s.unwrap_or("")
        .split(',')
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
        .collect()
}

/// Exactly `N` comma-separated finite numbers.
pub fn floats<const N: usize>(s: &str, flag: &str) -> Result<[f64; N]> {
    let v: Vec<f64> = s
        .split(',')
        .map(|x| x.trim().parse::<f64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::arg(flag, format!("'{s}' is not {N} comma-separated numbers")))?;
    if v.iter().any(|x| !x.is_finite()) {
        return Err(Error::arg(
            flag,
            format!("'{s}': every number must be finite"),
        ));
    }
    v.try_into()
        .map_err(|_| Error::arg(flag, format!("'{s}' must have exactly {N} numbers")))
}

/// Exactly `N` comma-separated integers.
pub fn ints<const N: usize, T: std::str::FromStr>(
    s: &str,
    flag: &str,
    what: &str,
) -> Result<[T; N]> {
    let v: Vec<T> = s
        .split(',')
        .map(|x| x.trim().parse::<T>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::arg(flag, format!("'{s}' is not {what}")))?;
    v.try_into()
        .map_err(|_| Error::arg(flag, format!("'{s}' is not {what}")))
}
