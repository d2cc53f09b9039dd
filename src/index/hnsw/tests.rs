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
