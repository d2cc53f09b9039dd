//! The phantom's summary for people.

use std::fmt;

use super::{PhantomSummary, VOXEL_UM};

impl fmt::Display for PhantomSummary {
    /// Where the files went and what they hold.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [z, y, x] = self.shape;
        let c = self.compartment_fractions;
        let planes: Vec<String> = self.planes_z.iter().map(|z| z.to_string()).collect();
        writeln!(
            f,
            "phantom (seed {}) written to {} in {:.1}s",
            self.seed,
            self.out_dir.display(),
            self.seconds
        )?;
        write!(
            f,
            "  volume.npy, labels.npy   uint8 {z} x {y} x {x} at {VOXEL_UM} um; tissue {:.0}% \
             (gland {:.0}%, tumour {:.0}%, stroma {:.0}%, fat {:.0}%)\n  \
             planes/                  {} H&E planes at z = {}\n  \
             spots.parquet            {} spots x {} genes; truth in truth/spots_truth.parquet; \
             phantom.json",
            100.0 * self.tissue_fraction,
            100.0 * c[0],
            100.0 * c[1],
            100.0 * c[2],
            100.0 * c[3],
            self.planes_z.len(),
            planes.join(", "),
            self.n_spots,
            self.genes.len()
        )
    }
}
