//! Unit tests of the graph: distance kernels and snapshot round trip.

use super::*;

#[test]
fn kernels_agree() {
    let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.37).collect();
    let b: Vec<f32> = (0..37).map(|i| (i as f32).sin()).collect();
    let exact: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
    assert!((l2sq_portable(&a, &b) - exact).abs() < 1e-3 * exact);
    assert!((l2sq(&a, &b) - exact).abs() < 1e-3 * exact);
}

#[test]
fn roundtrip_and_rejects_damage() {
    let mut g = Graph::<Flat>::new(4, 4, 16, 10);
    let items: Vec<(u64, Vec<f32>)> = (0..200u64)
        .map(|i| (i * 3, vec![i as f32, (i % 7) as f32, 1.0, -(i as f32)]))
        .collect();
    g.insert(&items);
    let mut bytes = Vec::new();
    let (len, crc) = g.write_to(&mut bytes).unwrap();
    assert_eq!(len as usize, bytes.len());
    let (back, crc2) = Graph::<Flat>::read_from(&mut &bytes[..], len).unwrap();
    assert_eq!(crc, crc2);
    assert_eq!(back.id(back.search(&items[50].1, 1, 16, None)[0].0), 150);
    let mut bad = bytes.clone();
    bad[100] ^= 4;
    assert!(Graph::<Flat>::read_from(&mut &bad[..], len).is_err());
    assert!(Graph::<Flat>::read_from(&mut &bytes[..bytes.len() / 2], len / 2).is_err());
}

#[test]
fn quantized_kernels_agree_with_plain_loops() {
    let a: Vec<u8> = (0..517).map(|i| (i * 37 % 256) as u8).collect();
    let b: Vec<u8> = (0..517).map(|i| (i * 91 % 253) as u8).collect();
    let plain: u32 = a.iter().zip(&b).map(|(x, y)| *x as u32 * *y as u32).sum();
    assert_eq!(Portable::dot8(&a, &b), plain);
    let full = vec![255u8; 4096];
    assert_eq!(Portable::dot8(&full, &full), 255 * 255 * 4096);
    #[cfg(target_arch = "x86_64")]
    if has_fma() {
        for n in [0, 5, 16, 31, 512, 517] {
            let want: u32 = Portable::dot8(&a[..n], &b[..n]);
            // SAFETY: AVX2 was detected just above.
            let got = unsafe { dot8_in_avx2(&a[..n], &b[..n]) };
            assert_eq!(got, want, "n {n}");
        }
        // SAFETY: as above.
        assert_eq!(unsafe { dot8_in_avx2(&full, &full) }, 255 * 255 * 4096);
    }
    let x = [0xF0F0u64, 0x1];
    let y = [0x0FF0u64, 0x3];
    assert_eq!(Portable::hamming(&x, &y), 9.0);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,popcnt")]
fn dot8_in_avx2(a: &[u8], b: &[u8]) -> u32 {
    Fma::dot8(a, b)
}

#[test]
fn quantized_graphs_find_their_points() {
    let items: Vec<(u64, Vec<f32>)> = (0..600u64)
        .map(|i| {
            let t = i as f32 * 0.37;
            (i, (0..24).map(|j| (t * (j + 1) as f32).sin()).collect())
        })
        .collect();
    let mut g = Graph::<Sq8>::new(24, 8, 64, 600);
    g.insert(&items);
    let found = (0..600)
        .filter(|&i| g.id(g.search(&items[i].1, 1, 32, None)[0].0) == i as u64)
        .count();
    assert!(found >= 590, "int8: {found} of 600");
    let mut b = Graph::<Bits>::new(24, 8, 64, 600);
    b.insert(&items);
    // Binary codes rank coarsely: a point is among its own 10 best candidates.
    let found = (0..600)
        .filter(|&i| {
            b.search(&items[i].1, 10, 64, None)
                .iter()
                .any(|(n, _)| b.id(*n) == i as u64)
        })
        .count();
    assert!(found >= 540, "binary: {found} of 600");
    // Snapshots of quantized graphs round-trip.
    let mut bytes = Vec::new();
    let (len, _) = g.write_to(&mut bytes).unwrap();
    let (back, _) = Graph::<Sq8>::read_from(&mut &bytes[..], len).unwrap();
    assert_eq!(
        back.search(&items[9].1, 3, 32, None),
        g.search(&items[9].1, 3, 32, None)
    );
    assert!(
        Graph::<Bits>::read_from(&mut &bytes[..], len).is_err(),
        "kind not checked"
    );
}

#[test]
fn int8_codes_do_not_depend_on_the_vectors_before_them() {
    use super::space::Sq8;
    let dim = 40;
    let small: Vec<Vec<f32>> = (0..50)
        .map(|i| {
            (0..dim)
                .map(|j| ((i * 7 + j) as f32 * 0.13).sin())
                .collect()
        })
        .collect();
    let large: Vec<Vec<f32>> = (0..50)
        .map(|i| {
            (0..dim)
                .map(|j| 100.0 + 40.0 * ((i * 3 + j) as f32).cos())
                .collect()
        })
        .collect();
    let (mut a, mut b) = (Sq8::empty(dim, 100), Sq8::empty(dim, 100));
    for v in small.iter().chain(&large) {
        a.push(v);
    }
    for v in large.iter().chain(&small) {
        b.push(v);
    }
    for i in 0..50u32 {
        for j in 0..50u32 {
            // small[i] is node i of a and node 50 + i of b.
            let da = a.between::<Portable>(i, j);
            let db = b.between::<Portable>(50 + i, 50 + j);
            assert_eq!(da.to_bits(), db.to_bits(), "small {i} {j}");
            let exact: f32 = small[i as usize]
                .iter()
                .zip(&small[j as usize])
                .map(|(x, y)| (x - y) * (x - y))
                .sum();
            assert!(
                (da - exact).abs() <= 0.05 * exact.max(0.5),
                "{da} vs {exact}"
            );
            let q = a.query(&large[i as usize]);
            let (qa, qb) = (a.dist::<Portable>(&q, 50 + j), b.dist::<Portable>(&q, j));
            assert_eq!(qa.to_bits(), qb.to_bits(), "large {i} {j}");
        }
    }
}
