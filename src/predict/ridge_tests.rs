//! Unit tests of the ridge solve and its cross-validation (against closed forms).

use super::*;

/// Deterministic pseudo-random numbers in [-1, 1).
fn lcg(seed: &mut u64) -> f64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
}

fn data(n: usize, f: usize, noise: f64, seed: u64) -> (Vec<Vec<f64>>, Vec<Vec<f64>>, Vec<f64>) {
    let mut s = seed;
    let w: Vec<f64> = (0..f * 2).map(|_| lcg(&mut s)).collect();
    let x: Vec<Vec<f64>> = (0..n)
        .map(|_| (0..f).map(|_| lcg(&mut s)).collect())
        .collect();
    let y = x
        .iter()
        .map(|r| {
            (0..2)
                .map(|t| {
                    3.0 + (0..f).map(|j| r[j] * w[j * 2 + t]).sum::<f64>() + noise * lcg(&mut s)
                })
                .collect()
        })
        .collect();
    (x, y, w)
}

#[test]
fn noise_free_data_recovers_the_weights_and_intercept() {
    let (x, y, w) = data(60, 5, 0.0, 1);
    let all: Vec<usize> = (0..60).collect();
    let fit = solve(&normal(&x, &y, &all), 1e-9).unwrap();
    for (a, b) in fit.w.iter().zip(&w) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
    // At x = 0 the prediction is the intercept of the data, 3.
    let mut out = [0.0; 2];
    fit.predict(&[0.0; 5], &mut out);
    assert!(
        (out[0] - 3.0).abs() < 1e-6 && (out[1] - 3.0).abs() < 1e-6,
        "{out:?}"
    );
}

#[test]
fn the_penalty_matches_the_closed_form_of_one_feature() {
    // One feature: w = sum(dx dy) / (sum(dx^2) + alpha).
    let x = vec![vec![0.0], vec![1.0], vec![2.0], vec![4.0]];
    let y = vec![vec![1.0], vec![2.0], vec![2.5], vec![5.0]];
    let all = [0, 1, 2, 3];
    let (mx, my) = (7.0 / 4.0, 10.5 / 4.0);
    let sxy: f64 = x
        .iter()
        .zip(&y)
        .map(|(a, b)| (a[0] - mx) * (b[0] - my))
        .sum();
    let sxx: f64 = x.iter().map(|a| (a[0] - mx).powi(2)).sum();
    for alpha in [0.5, 3.0, 100.0] {
        let fit = solve(&normal(&x, &y, &all), alpha).unwrap();
        assert!((fit.w[0] - sxy / (sxx + alpha)).abs() < 1e-12);
    }
    assert!(solve(&normal(&x, &y, &all), -100.0).is_none());
}

#[test]
fn group_sums_add_up_and_a_prefix_is_the_fit_of_the_first_features() {
    let (x, y, _) = data(90, 6, 0.3, 3);
    let all: Vec<usize> = (0..90).collect();
    let (a, b): (Vec<usize>, Vec<usize>) = all.iter().partition(|&&i| i % 3 == 0);
    let (sa, sb) = (Sums::of(&x, &y, &a), Sums::of(&x, &y, &b));
    let whole = normal(&x, &y, &all);
    let added = Sums::add(&[&sa, &sb]).normal(6);
    for (u, v) in whole
        .xtx
        .iter()
        .zip(&added.xtx)
        .chain(whole.xty.iter().zip(&added.xty))
    {
        assert!((u - v).abs() < 1e-9, "{u} vs {v}");
    }
    // The first 4 features' normal equations = those of x cut to 4 columns.
    let cut: Vec<Vec<f64>> = x.iter().map(|r| r[..4].to_vec()).collect();
    let (p, q) = (Sums::of(&x, &y, &all).normal(4), normal(&cut, &y, &all));
    assert_eq!(p.xtx.len(), 16);
    for (u, v) in p.xtx.iter().zip(&q.xtx).chain(p.xty.iter().zip(&q.xty)) {
        assert!((u - v).abs() < 1e-9, "{u} vs {v}");
    }
}

#[test]
fn held_out_pcc_is_high_for_signal_and_a_larger_penalty_shrinks_weights() {
    let (x, y, _) = data(200, 8, 0.5, 7);
    let train: Vec<usize> = (0..150).collect();
    let test: Vec<usize> = (150..200).collect();
    let n = normal(&x, &y, &train);
    let small = solve(&n, 1.0).unwrap();
    let big = solve(&n, 1e6).unwrap();
    assert!(mean_pcc(&small, &x, &y, &test, None) > 0.8);
    let norm = |f: &Fit| f.w.iter().map(|v| v * v).sum::<f64>();
    assert!(norm(&big) < norm(&small) * 1e-3);
}

/// The ridge map of rows `train` over the first `w` features, from first principles:
/// centre by the training means, build X'X + alpha I and X'Y densely, solve by
/// Gauss-Jordan elimination with partial pivoting.
fn naive_fit(x: &[Vec<f64>], y: &[Vec<f64>], train: &[usize], w: usize, alpha: f64) -> Fit {
    let g = y[0].len();
    let n = train.len() as f64;
    let mu_x: Vec<f64> = (0..w)
        .map(|j| train.iter().map(|&i| x[i][j]).sum::<f64>() / n)
        .collect();
    let mu_y: Vec<f64> = (0..g)
        .map(|t| train.iter().map(|&i| y[i][t]).sum::<f64>() / n)
        .collect();
    // Augmented matrix [X'X + aI | X'Y], w x (w + g).
    let mut m = vec![vec![0.0; w + g]; w];
    for &i in train {
        for a in 0..w {
            let da = x[i][a] - mu_x[a];
            for b in 0..w {
                m[a][b] += da * (x[i][b] - mu_x[b]);
            }
            for t in 0..g {
                m[a][w + t] += da * (y[i][t] - mu_y[t]);
            }
        }
    }
    for (a, row) in m.iter_mut().enumerate() {
        row[a] += alpha;
    }
    for c in 0..w {
        let p = (c..w)
            .max_by(|&a, &b| m[a][c].abs().total_cmp(&m[b][c].abs()))
            .unwrap();
        m.swap(c, p);
        let d = m[c][c];
        m[c].iter_mut().for_each(|v| *v /= d);
        for r in 0..w {
            if r != c {
                let f = m[r][c];
                let pivot = m[c].clone();
                m[r].iter_mut().zip(&pivot).for_each(|(v, p)| *v -= f * p);
            }
        }
    }
    let wts: Vec<f64> = (0..w).flat_map(|a| m[a][w..].to_vec()).collect();
    Fit { mu_x, mu_y, w: wts }
}

/// Scipy's definition of the PCC, written out.
fn pcc(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(u, v)| (u - ma) * (v - mb)).sum();
    let va: f64 = a.iter().map(|u| (u - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|v| (v - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

#[test]
fn multi_reference_cross_validation_equals_the_closed_form() {
    // Three reference samples of unequal size; the third has a shifted intercept, as a
    // section of another batch would.
    let (x, mut y, _) = data(150, 6, 0.6, 11);
    let group: Vec<usize> = (0..150)
        .map(|i| match i {
            0..40 => 0,
            40..100 => 1,
            _ => 2,
        })
        .collect();
    for (r, &gi) in y.iter_mut().zip(&group) {
        if gi == 2 {
            r.iter_mut().for_each(|v| *v += 1.5);
        }
    }
    let sums: Vec<Sums> = (0..3)
        .map(|gi| {
            let idx: Vec<usize> = (0..150).filter(|&i| group[i] == gi).collect();
            Sums::of(&x, &y, &idx)
        })
        .collect();
    let widths = [2, 4, 6];
    let alphas = [0.1, 10.0, 1000.0];
    let cv = cross_validate(&x, &y, &group, &sums, &widths, &alphas, None);
    assert_eq!(cv.scores.len(), 9);
    let mut best = (0, 0.0, f64::NEG_INFINITY);
    for &(wi, a, got) in &cv.scores {
        let mut folds = Vec::new();
        for held in 0..3 {
            let test: Vec<usize> = (0..150).filter(|&i| group[i] == held).collect();
            let train: Vec<usize> = (0..150).filter(|&i| group[i] != held).collect();
            let fit = naive_fit(&x, &y, &train, widths[wi], a);
            let per_gene: Vec<f64> = (0..2)
                .map(|t| {
                    let pred: Vec<f64> = test
                        .iter()
                        .map(|&i| {
                            let mut o = [0.0; 2];
                            fit.predict(&x[i][..widths[wi]], &mut o);
                            o[t]
                        })
                        .collect();
                    let meas: Vec<f64> = test.iter().map(|&i| y[i][t]).collect();
                    pcc(&pred, &meas)
                })
                .collect();
            folds.push(per_gene.iter().sum::<f64>() / 2.0);
        }
        let want = folds.iter().sum::<f64>() / 3.0;
        let got = got.expect("every fold solvable");
        assert!(
            (got - want).abs() < 1e-9,
            "width {} alpha {a}: {got} vs {want}",
            widths[wi]
        );
        if want > best.2 {
            best = (wi, a, want);
        }
    }
    let chosen = cv.best.unwrap();
    assert_eq!((chosen.0, chosen.1), (best.0, best.1));
    // All six features carry signal: the widest candidate wins, at a small penalty.
    assert_eq!(widths[chosen.0], 6);
}
