//! Unit tests of the phantom generator.

use super::noise::mix;
use super::render::box_sum_2d;
use super::spots::spot_axis;
use super::*;
use crate::vecio;

fn params(seed: u64, shape: [usize; 3], plane_step: usize) -> PhantomParams {
    PhantomParams {
        seed,
        shape,
        plane_step,
        overwrite: false,
        oblique: 0,
    }
}

fn build_with_threads(p: &PhantomParams, threads: usize) -> Phantom {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(|| build(p).unwrap())
}

fn same(a: &Phantom, b: &Phantom) -> bool {
    a.volume == b.volume
        && a.labels == b.labels
        && a.planes == b.planes
        && a.programs == b.programs
        && a.spots.len() == b.spots.len()
        && a.spots.iter().zip(&b.spots).all(|(x, y)| {
            x.name == y.name
                && x.counts == y.counts
                && x.expected == y.expected
                && x.frac == y.frac
                && x.immune == y.immune
        })
}

#[test]
fn deterministic_whatever_the_thread_count() {
    let p = params(5, [32, 256, 256], 16);
    let one = build_with_threads(&p, 1);
    let three = build_with_threads(&p, 3);
    assert!(
        same(&one, &three),
        "1 and 3 threads gave different phantoms"
    );
    let other = build_with_threads(&params(6, [32, 256, 256], 16), 2);
    assert_ne!(one.volume, other.volume);
    assert_ne!(one.labels, other.labels);
    assert_eq!(
        one.planes.iter().map(|p| p.0).collect::<Vec<_>>(),
        vec![8, 24]
    );
    assert!(!one.spots.is_empty());
}

/// Label fractions of the tissue in one slice.
fn slice_fractions(ph: &Phantom, z: usize) -> [f64; 4] {
    let [_, ny, nx] = ph.params.shape;
    let s = &ph.labels[z * ny * nx..(z + 1) * ny * nx];
    let mut c = [0usize; 5];
    s.iter().for_each(|&l| c[l as usize] += 1);
    let tissue: usize = c[1..].iter().sum();
    std::array::from_fn(|k| c[k + 1] as f64 / tissue as f64)
}

#[test]
fn every_compartment_in_every_plane_with_distinct_textures() {
    for seed in [1, 2] {
        let ph = build(&params(seed, [48, 512, 512], 8)).unwrap();
        let tissue: u64 = ph.label_counts[1..].iter().sum();
        let total: u64 = ph.label_counts.iter().sum();
        let tf = tissue as f64 / total as f64;
        assert!((0.5..0.8).contains(&tf), "tissue fraction {tf}");
        for (name, count) in COMPARTMENTS.iter().zip(ph.label_counts).skip(1) {
            let f = count as f64 / tissue as f64;
            assert!(
                (0.05..=0.60).contains(&f),
                "seed {seed}: {name} takes {f:.3} of the tissue"
            );
        }
        for (z, _) in &ph.planes {
            let f = slice_fractions(&ph, *z);
            assert!(
                f.iter().all(|&v| v >= 0.03),
                "seed {seed}, plane z={z}: fractions {f:?}"
            );
        }
        // Texture statistics per label.
        let mut sum = [0f64; 5];
        let mut sq = [0f64; 5];
        let mut n = [0f64; 5];
        for (&v, &l) in ph.volume.iter().zip(&ph.labels) {
            let (v, l) = (v as f64, l as usize);
            sum[l] += v;
            sq[l] += v * v;
            n[l] += 1.0;
        }
        let mean: [f64; 5] = std::array::from_fn(|k| sum[k] / n[k]);
        let sd: [f64; 5] = std::array::from_fn(|k| (sq[k] / n[k] - mean[k] * mean[k]).sqrt());
        assert!(
            mean[0] < 10.0 && sd[0] < 3.0,
            "background {} +- {}",
            mean[0],
            sd[0]
        );
        for a in 1..5 {
            assert!(mean[a] > 60.0, "{} mean {}", COMPARTMENTS[a], mean[a]);
            for b in a + 1..5 {
                let (dm, ds) = ((mean[a] - mean[b]).abs(), (sd[a] - sd[b]).abs());
                assert!(
                    dm >= 10.0 && (dm >= 20.0 || ds >= 5.0),
                    "{} ({:.1} +- {:.1}) and {} ({:.1} +- {:.1}) are too alike",
                    COMPARTMENTS[a],
                    mean[a],
                    sd[a],
                    COMPARTMENTS[b],
                    mean[b],
                    sd[b]
                );
            }
        }
        // Otsu's threshold separates air from tissue.
        let mut hist = [0f64; 256];
        ph.volume.iter().for_each(|&v| hist[v as usize] += 1.0);
        let (mut best, mut t_best) = (0.0, 0);
        let (mut w0, mut s0) = (0.0, 0.0);
        let s_all: f64 = hist.iter().enumerate().map(|(i, h)| i as f64 * h).sum();
        for (t, h) in hist.iter().enumerate().take(255) {
            w0 += h;
            s0 += t as f64 * h;
            let w1 = total as f64 - w0;
            if w0 == 0.0 || w1 == 0.0 {
                continue;
            }
            let d = s0 / w0 - (s_all - s0) / w1;
            let between = w0 * w1 * d * d;
            if between > best {
                (best, t_best) = (between, t);
            }
        }
        let agree = ph
            .volume
            .iter()
            .zip(&ph.labels)
            .filter(|&(&v, &l)| (v as usize > t_best) == (l > 0))
            .count() as f64
            / total as f64;
        eprintln!("seed {seed}: mean {mean:.1?} sd {sd:.1?} Otsu {t_best} agreement {agree:.4}");
        assert!(
            agree > 0.98,
            "Otsu threshold {t_best} agrees with the tissue on {agree:.4}"
        );
    }
}

#[test]
fn spots_are_centred_and_measured() {
    assert_eq!(
        spot_axis(640),
        (0..13).map(|i| 19.5 + 50.0 * i as f64).collect::<Vec<_>>()
    );
    assert_eq!(spot_axis(25), vec![12.0]);
    assert_eq!(spot_axis(74), vec![36.5]);
    let ph = build(&params(3, [32, 256, 256], 16)).unwrap();
    for s in &ph.spots {
        let total: f64 = s.frac.iter().sum();
        assert!((total - 1.0).abs() < 1e-9, "{}: {:?}", s.name, s.frac);
        assert!((0.0..=1.0).contains(&s.immune));
        assert_eq!(s.counts.len(), N_GENES);
        assert_eq!(s.expected.len(), N_GENES);
        // Expected expression sums to 1e4 before log1p.
        let norm: f64 = s.expected.iter().map(|e| e.exp_m1()).sum();
        assert!((norm - 1e4).abs() < 1e-6, "{norm}");
    }
    for p in &ph.programs {
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }
}

#[test]
fn box_sums_match_brute_force() {
    let (ny, nx) = (40, 57);
    let lab: Vec<u8> = (0..ny * nx).map(|i| (mix(i as u64) % 5) as u8).collect();
    let mut out = vec![0u16; ny * nx];
    box_sum_2d(&lab, ny, nx, &mut out);
    let r = IMMUNE_RADIUS as i64;
    for y in 0..ny as i64 {
        for x in 0..nx as i64 {
            let mut c = 0;
            for yy in (y - r).max(0)..=(y + r).min(ny as i64 - 1) {
                for xx in (x - r).max(0)..=(x + r).min(nx as i64 - 1) {
                    c += u16::from(lab[(yy * nx as i64 + xx) as usize] == 2);
                }
            }
            assert_eq!(out[(y * nx as i64 + x) as usize], c, "at {y},{x}");
        }
    }
}

#[test]
fn parameters_are_checked() {
    let name = |p: PhantomParams| match p.validate() {
        Err(crate::Error::InvalidArgument { name, .. }) => name,
        other => panic!("{other:?}"),
    };
    let msg = |p: PhantomParams| p.validate().unwrap_err().to_string();
    assert_eq!(name(params(0, [8, 20, 256], 4)), "shape");
    assert_eq!(name(params(0, [0, 256, 256], 4)), "shape");
    assert_eq!(name(params(0, [8, 256, 256], 0)), "plane_step");
    assert_eq!(name(params(0, [4, 256, 256], 16)), "plane_step");
    assert!(msg(params(0, [4096, 4096, 4096], 16)).contains("too large"));
    assert!(PhantomParams::default().validate().is_ok());
    assert_eq!(
        PhantomParams::default().planes_z(),
        vec![8, 24, 40, 56, 72, 88]
    );
    assert_eq!(gene_names().len(), 60);
    assert_eq!(gene_names()[0], "GLD01");
    assert_eq!(gene_names()[59], "HK10");
}

#[test]
fn u8_npy_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.npy");
    let data: Vec<u8> = (0..2 * 3 * 5).map(|i| i as u8).collect();
    vecio::write_u8_npy(&path, &[2, 3, 5], &data).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    assert_eq!(npy.shape(), &[2, 3, 5]);
    assert_eq!(npy.dtype().descr(), "'|u1'");
    let back: Vec<u8> = npy.into_vec().unwrap();
    assert_eq!(back, data);
    assert_eq!((bytes.len() - data.len()) % 64, 0);
}
