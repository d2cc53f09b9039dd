//! `vortexdb phantom`: write a deterministic synthetic tissue phantom (see
//! [`vortexdb::phantom`]): `volume.npy`, `labels.npy`, `planes/plane_ZZZ.png`,
//! `spots.parquet`, `truth/spots_truth.parquet` and `phantom.json`.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use serde_json::json;

use super::out;
use vortexdb::error::{Error, Result};
use vortexdb::phantom::{self, PhantomParams};

/// Arguments of `phantom`.
#[derive(Debug, Args)]
pub struct PhantomArgs {
    /// Seed: the same seed and parameters give byte-identical files.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output directory (created; must be empty unless --force).
    #[arg(long)]
    pub out: PathBuf,
    /// Volume shape Z,Y,X in 4-um voxels.
    #[arg(long, default_value = "96,640,640")]
    pub shape: String,
    /// Distance in voxels between H&E planes (planes at z = step/2, step/2 + step, ...).
    #[arg(long, default_value_t = 16)]
    pub plane_step: usize,
    /// Write into a non-empty output directory, replacing files of the same names.
    #[arg(long)]
    pub force: bool,
}

/// Parse `Z,Y,X`.
fn parse_shape(s: &str) -> Result<[usize; 3]> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let err = || {
        Error::bad_input(
            "--shape",
            format!("'{s}' is not Z,Y,X (three positive integers)"),
        )
    };
    if parts.len() != 3 {
        return Err(err());
    }
    let mut shape = [0usize; 3];
    for (d, p) in shape.iter_mut().zip(&parts) {
        *d = p.parse().map_err(|_| err())?;
    }
    Ok(shape)
}

pub(super) fn run(a: PhantomArgs, json_out: bool) -> Result<()> {
    let params = PhantomParams {
        seed: a.seed,
        shape: parse_shape(&a.shape)?,
        plane_step: a.plane_step,
        overwrite: a.force,
    };
    let t = Instant::now();
    let s = phantom::generate(&params, &a.out)?;
    let seconds = t.elapsed().as_secs_f64();
    if json_out {
        let mut v = serde_json::to_value(&s).expect("summary serialises");
        v["ok"] = json!(true);
        v["seconds"] = json!(seconds);
        out(&v.to_string());
        return Ok(());
    }
    let [z, y, x] = s.shape;
    let f = s.compartment_fractions;
    out(&format!(
        "phantom (seed {}) written to {} in {seconds:.1}s",
        s.seed,
        s.out_dir.display()
    ));
    out(&format!(
        "  volume.npy, labels.npy   uint8 {z} x {y} x {x} at {} um; tissue {:.0}% (gland {:.0}%, tumour {:.0}%, stroma {:.0}%, fat {:.0}%)",
        phantom::VOXEL_UM,
        100.0 * s.tissue_fraction,
        100.0 * f[0],
        100.0 * f[1],
        100.0 * f[2],
        100.0 * f[3]
    ));
    out(&format!(
        "  planes/                  {} H&E planes at z = {}",
        s.planes_z.len(),
        s.planes_z
            .iter()
            .map(|z| z.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    out(&format!(
        "  spots.parquet            {} spots x {} genes; truth in truth/spots_truth.parquet; phantom.json",
        s.n_spots,
        s.genes.len()
    ));
    Ok(())
}
