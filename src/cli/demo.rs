//! `vortexdb demo` and `vortexdb phantom`: the end-to-end demo and the synthetic
//! phantom it runs on.

use std::path::PathBuf;

use clap::Args;

use super::args::ints;
use super::emit;
use vortexdb::{DemoOptions, PhantomParams, Result, generate_phantom, run_demo};

/// Arguments of `demo`.
#[rustfmt::skip]
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Output directory (created; an earlier demo's files in it are replaced).
    #[arg(long, default_value = "demo-out")] pub out: PathBuf,
    /// Phantom seed. The default, 7, is one the built-in model never saw (it was trained
    /// on seeds 1 and 3 and tuned on seed 2), so the demo's figures are held out.
    #[arg(long, default_value_t = 7)] pub seed: u64,
    /// Phantom shape Z,Y,X in 4-um voxels.
    #[arg(long, default_value = "48,256,256")] pub shape: String,
    /// Execution provider: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")] pub device: String,
}

/// Run `demo`.
pub fn demo(a: &DemoArgs, json: bool) -> Result<()> {
    let opts = DemoOptions {
        out: a.out.clone(),
        seed: a.seed,
        shape: ints(&a.shape, "shape", "Z,Y,X")?,
        device: a.device.parse()?,
    };
    emit(json, &run_demo(&opts, &mut |line| eprintln!("{line}"))?);
    Ok(())
}

/// Arguments of `phantom`.
#[rustfmt::skip]
#[derive(Debug, Args)]
pub struct PhantomArgs {
    /// Seed: the same seed and parameters give byte-identical files.
    #[arg(long, default_value_t = 0)] pub seed: u64,
    /// Output directory (created; must be empty unless --force).
    #[arg(long)] pub out: PathBuf,
    /// Volume shape Z,Y,X in 4-um voxels.
    #[arg(long, default_value = "96,640,640")] pub shape: String,
    /// Distance in voxels between H&E planes (planes at z = step/2, step/2 + step, ...).
    #[arg(long, default_value_t = 16)] pub plane_step: usize,
    /// Write into a non-empty output directory, replacing files of the same names.
    #[arg(long)] pub force: bool,
    /// Also render N H&E sections on random oblique planes (tilt <= 10 degrees, random
    /// depth, rotation, shift and scale) with their spots, the planes recorded in
    /// phantom.json: the truth for `register section-to-volume`.
    #[arg(long, default_value_t = 0)] pub oblique: usize,
}

/// Run `phantom`.
pub fn phantom(a: &PhantomArgs, json: bool) -> Result<()> {
    let params = PhantomParams {
        seed: a.seed,
        shape: ints(&a.shape, "shape", "Z,Y,X (three positive integers)")?,
        plane_step: a.plane_step,
        overwrite: a.force,
        oblique: a.oblique,
    };
    emit(json, &generate_phantom(&params, &a.out)?);
    Ok(())
}
