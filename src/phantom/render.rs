//! One slice: labels, intensities, the 2D tumour box sums, and the H&E rendering
//! when the slice is a plane.

use rand::Rng;
use rand_distr::StandardNormal;

use super::IMMUNE_RADIUS;
use super::ctx::{Ctx, GLAND_RIM, STRIPE_PERIOD, argmax4};
use super::noise::{S_HE_NOISE, S_NOISE, rng};
use super::texture::{FatSeeds, splat_glands, splat_nuclei};

fn lerp3(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    std::array::from_fn(|i| a[i] + (b[i] - a[i]) * t)
}

const HE_BACKGROUND: [f32; 3] = [245.0, 245.0, 246.0];
const HE_FAT: [f32; 3] = [250.0, 244.0, 247.0];
const HE_MEMBRANE: [f32; 3] = [222.0, 140.0, 182.0];
const HE_STROMA: [f32; 3] = [230.0, 150.0, 190.0];
const HE_STROMA_BAND: [f32; 3] = [10.0, 26.0, 14.0];
const HE_CYTOPLASM: [f32; 3] = [205.0, 128.0, 182.0];
const HE_NUCLEUS: [f32; 3] = [90.0, 60.0, 140.0];
const HE_RIM: [f32; 3] = [150.0, 95.0, 172.0];
const HE_LUMEN: [f32; 3] = [248.0, 246.0, 248.0];
const HE_MATRIX: [f32; 3] = [238.0, 196.0, 218.0];

/// Render slice `z` into its volume, label and tumour-box-sum buffers; returns the RGB
/// H&E image when `z` is a plane.
pub(super) fn render_slice(
    ctx: &Ctx,
    z: usize,
    vol: &mut [u8],
    lab: &mut [u8],
    boxsum: &mut [u16],
) -> Option<Vec<u8>> {
    let [_, ny, nx] = ctx.shape;
    let is_plane = ctx.planes.contains(&z);
    let mut gsd = vec![f32::MAX; ny * nx];
    splat_glands(ctx, z, &mut gsd);
    let mut nuc = vec![0f32; ny * nx];
    let mut nuc_he = if is_plane {
        vec![0f32; ny * nx]
    } else {
        Vec::new()
    };
    splat_nuclei(ctx, z, &mut nuc, is_plane.then_some(&mut nuc_he[..]));
    let fat = FatSeeds::new(ctx.seed, ctx.shape, z);
    let (mut fat_table, mut fat_row) = (Vec::new(), None);
    let mut rgb = if is_plane {
        vec![0u8; ny * nx * 3]
    } else {
        Vec::new()
    };

    let comp_planes: Vec<_> = ctx.comp.iter().map(|n| n.planes(z)).collect();
    let warp_planes = ctx.warp.planes(z);
    let orient_planes = ctx.orient.planes(z);
    let mut orient_row = vec![0f32; nx];
    let shade_planes = ctx.shade.planes(z);
    let mut comp_rows = vec![vec![0f32; nx]; 4];
    let mut warp_row = vec![0f32; nx];
    let mut shade_row = vec![0f32; nx];
    let mut scratch = Vec::new();
    let mut noise = rng(ctx.seed, S_NOISE, z as i64, 0, 0);
    let mut he_noise = rng(ctx.seed, S_HE_NOISE, z as i64, 0, 0);
    let bias = ctx.bias[z];
    let dirs = &ctx.stripe_dirs;
    let k_stripe = std::f32::consts::TAU / STRIPE_PERIOD;
    let depth = ctx.depth(z);

    for y in 0..ny {
        for k in 0..4 {
            ctx.comp[k].row(&comp_planes[k], y, &mut comp_rows[k], &mut scratch);
        }
        ctx.warp.row(&warp_planes, y, &mut warp_row, &mut scratch);
        ctx.orient
            .row(&orient_planes, y, &mut orient_row, &mut scratch);
        ctx.shade
            .row(&shade_planes, y, &mut shade_row, &mut scratch);
        let row_phase: [f32; 3] =
            std::array::from_fn(|j| dirs[j][0] * z as f32 + dirs[j][1] * y as f32);
        // Fibre striations: one of three directions by the orientation field, two
        // blended across the border between regions.
        let stripe = |x: usize| -> f32 {
            let wave =
                |j: usize| ((row_phase[j] + dirs[j][2] * x as f32 + warp_row[x]) * k_stripe).sin();
            const EDGE: f32 = 0.12;
            let o = ((orient_row[x] + 1.0) * 1.5).clamp(0.0, 2.999);
            let j = o as usize;
            let f = o - j as f32;
            if j > 0 && f < EDGE {
                let w = 0.5 - 0.5 * f / EDGE;
                (1.0 - w) * wave(j) + w * wave(j - 1)
            } else if j < 2 && f > 1.0 - EDGE {
                let w = 0.5 - 0.5 * (1.0 - f) / EDGE;
                (1.0 - w) * wave(j) + w * wave(j + 1)
            } else {
                wave(j)
            }
        };
        for x in 0..nx {
            let pix = y * nx + x;
            let n: f32 = noise.sample(StandardNormal);
            let label = if ctx.tissue(depth, pix) {
                1 + argmax4(std::array::from_fn(|k| comp_rows[k][x] + bias[k]))
            } else {
                0
            };
            lab[pix] = label as u8;
            // Volume intensity and H&E colour.
            let (v, colour) = match label {
                0 => (5.0 + 1.5 * n, HE_BACKGROUND),
                1 => {
                    let s = gsd[pix];
                    if s < -GLAND_RIM {
                        (72.0, HE_LUMEN)
                    } else if s < 0.0 {
                        let he = if is_plane { nuc_he[pix] } else { 0.0 };
                        (172.0 + 35.0 * nuc[pix], lerp3(HE_RIM, HE_NUCLEUS, he))
                    } else {
                        (88.0, HE_MATRIX)
                    }
                }
                2 => {
                    let he = if is_plane { nuc_he[pix] } else { 0.0 };
                    (148.0 + 80.0 * nuc[pix], lerp3(HE_CYTOPLASM, HE_NUCLEUS, he))
                }
                3 => {
                    let st = stripe(x);
                    let c = std::array::from_fn(|i| HE_STROMA[i] - st * HE_STROMA_BAND[i]);
                    (130.0 + 24.0 * st, c)
                }
                _ => {
                    if fat_row != Some(y) {
                        fat.row_table(z, y, &mut fat_table);
                        fat_row = Some(y);
                    }
                    let m = fat.membrane(&fat_table, x);
                    (82.0 + 100.0 * m, lerp3(HE_FAT, HE_MEMBRANE, m))
                }
            };
            let v = if label == 0 {
                v
            } else {
                v + 5.0 * shade_row[x] + 6.0 * n
            };
            vol[pix] = (v.clamp(0.0, 255.0) + 0.5) as u8;
            if is_plane {
                let tint = if label == 0 { 0.0 } else { 4.0 * shade_row[x] };
                for (c, col) in colour.iter().enumerate() {
                    let e: f32 = he_noise.sample(StandardNormal);
                    rgb[pix * 3 + c] = ((col + tint + 5.0 * e).clamp(0.0, 255.0) + 0.5) as u8;
                }
            }
        }
    }
    box_sum_2d(lab, ny, nx, boxsum);
    is_plane.then_some(rgb)
}

/// Box sums (radius [`IMMUNE_RADIUS`], clipped at the edges) of the tumour indicator.
pub(super) fn box_sum_2d(lab: &[u8], ny: usize, nx: usize, out: &mut [u16]) {
    let r = IMMUNE_RADIUS;
    if !lab.contains(&2) {
        out.fill(0);
        return;
    }
    let mut h = vec![0u16; ny * nx];
    for (lrow, hrow) in lab.chunks_exact(nx).zip(h.chunks_exact_mut(nx)) {
        if !lrow.contains(&2) {
            continue;
        }
        let t = |x: usize| u16::from(lrow[x] == 2);
        let mut acc: u16 = (0..=r.min(nx - 1)).map(t).sum();
        for (x, hv) in hrow.iter_mut().enumerate() {
            *hv = acc;
            if x + r + 1 < nx {
                acc += t(x + r + 1);
            }
            if x >= r {
                acc -= t(x - r);
            }
        }
    }
    let mut acc = vec![0u16; nx];
    for row in h.chunks_exact(nx).take(r.min(ny - 1) + 1) {
        acc.iter_mut().zip(row).for_each(|(a, v)| *a += v);
    }
    for y in 0..ny {
        out[y * nx..(y + 1) * nx].copy_from_slice(&acc);
        if y + r + 1 < ny {
            let add = &h[(y + r + 1) * nx..][..nx];
            acc.iter_mut().zip(add).for_each(|(a, v)| *a += v);
        }
        if y >= r {
            let sub = &h[(y - r) * nx..][..nx];
            acc.iter_mut().zip(sub).for_each(|(a, v)| *a -= v);
        }
    }
}
