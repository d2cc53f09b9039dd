//! Structured-mutation fuzzing of every vortexdb file reader (a `harness = false` test).
//!
//! * `cargo test --release --test fuzz`: the short pass, every target for `FUZZ_SECS`
//!   seconds (default 4) and at most `FUZZ_EXECS` runs (default 10000, so that the
//!   short pass runs the same inputs on a fast machine as on a slow one, just fewer of
//!   them on a slow one), seeds and regression inputs first; exits non-zero on a crash.
//! * `... -- --target NAME --seconds 600`: one target (or a comma-separated list), long.
//! * `... -- --list`; `... -- --make-corpus` (rewrite the generated seeds);
//!   `... -- --target NAME --run FILE` (run one input in this process, to reproduce).
//!
//! Each target runs in a child process (this executable, `--child NAME`) under an
//! address-space limit (`prlimit --as=2 GiB`) with `VORTEX_MEMORY_BUDGET=256M`: a panic
//! is caught in the child, a dying child (allocation abort, stack overflow, signal,
//! hang) is seen by the parent, and either way the input is kept in
//! `target/fuzz/<target>/crash-<n>.<role>`. A returned `Err` is the expected outcome
//! for bad input, never a crash. See `tests/fuzz/README.md`.

mod alloc;
mod image_seeds;
mod images;
mod mutate;
mod seeds;
mod structured;
mod targets;
mod text;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mutate::{MAX_INPUT, Rng, fnv1a};
use targets::{TARGETS, Target};

/// Address-space limit of a child: an allocation above it aborts (a found crash).
const AS_LIMIT: u64 = 2 << 30;
/// The memory budget vortexdb checks sizes read from files against, in a child.
const CHILD_BUDGET: &str = "256M";
/// Default seconds per target of the short pass.
const DEFAULT_SECS: f64 = 4.0;
/// Default most runs per target of the short pass (the mutation sequence is
/// deterministic, so the short pass always tries a prefix of one sequence).
const SHORT_EXECS: u64 = 10_000;
/// Seconds a child may overrun its time before it is killed as hung.
const GRACE_SECS: f64 = 20.0;
/// Children started per target (the first, then one per crash that killed one).
const MAX_CHILDREN: u32 = 50;
/// Largest in-memory corpus per target; inputs that give a new outcome join it.
const MAX_CORPUS: usize = 4000;

#[derive(Debug, Default)]
struct Args {
    list: bool,
    make_corpus: bool,
    child: Option<String>,
    targets: Vec<String>,
    seconds: Option<f64>,
    execs: Option<u64>,
    restart: u32,
    skip_replay: bool,
    run: Vec<PathBuf>,
}

/// Parse our flags; anything else starting with `--` (cargo test passes some, e.g.
/// `--nocapture`) and positional filters are ignored.
fn parse_args() -> Args {
    let mut a = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--list" => a.list = true,
            "--make-corpus" => a.make_corpus = true,
            "--skip-replay" => a.skip_replay = true,
            "--child" => a.child = it.next(),
            "--target" => {
                let v = it.next().unwrap_or_default();
                a.targets.extend(v.split(',').map(str::to_string));
            }
            "--seconds" => a.seconds = it.next().and_then(|s| s.parse().ok()),
            "--execs" => a.execs = it.next().and_then(|s| s.parse().ok()),
            "--restart" => a.restart = it.next().and_then(|s| s.parse().ok()).unwrap_or(0),
            "--run" => a.run.extend(it.next().map(PathBuf::from)),
            _ => {}
        }
    }
    a
}

/// `tests/fuzz/corpus/`.
fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus")
}

/// `target/fuzz/<target>/` (or under `CARGO_TARGET_DIR`, or `$FUZZ_DIR/<target>/`: two
/// fuzz runs at once must not share one, they would rewrite each other's inputs).
fn fuzz_dir(target: &str) -> PathBuf {
    if let Some(d) = std::env::var_os("FUZZ_DIR") {
        return PathBuf::from(d).join(target);
    }
    let t = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    t.join("fuzz").join(target)
}

fn main() -> ExitCode {
    let args = parse_args();
    if args.list {
        for t in TARGETS {
            println!("{:16} {}", t.name, t.about);
        }
        return ExitCode::SUCCESS;
    }
    if args.make_corpus {
        return match seeds::make_all(&corpus_root()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("make-corpus: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let lookup = |name: &str| {
        targets::find(name).unwrap_or_else(|| {
            eprintln!("unknown fuzz target '{name}' (see --list)");
            std::process::exit(2)
        })
    };
    if let Some(name) = &args.child {
        let secs = args.seconds.unwrap_or(DEFAULT_SECS);
        let execs = args.execs.unwrap_or(u64::MAX);
        return child_main(lookup(name), secs, execs, args.restart, !args.skip_replay);
    }
    if !args.run.is_empty() {
        let [name] = args.targets.as_slice() else {
            eprintln!("--run needs exactly one --target");
            return ExitCode::from(2);
        };
        return reproduce(lookup(name), &args.run);
    }
    let env_secs: Option<f64> = std::env::var("FUZZ_SECS").ok().and_then(|s| s.parse().ok());
    let short = args.seconds.is_none() && env_secs.is_none() && args.targets.is_empty();
    let secs = args.seconds.or(env_secs).unwrap_or(DEFAULT_SECS);
    let execs = args
        .execs
        .or_else(|| std::env::var("FUZZ_EXECS").ok()?.parse().ok())
        .or(short.then_some(SHORT_EXECS))
        .unwrap_or(u64::MAX);
    let chosen: Vec<&Target> = if args.targets.is_empty() {
        TARGETS.iter().collect()
    } else {
        args.targets.iter().map(|n| lookup(n)).collect()
    };
    let start = Instant::now();
    let mut crashed = Vec::new();
    for t in &chosen {
        let s = run_parent(t, secs, execs);
        println!(
            "fuzz target={} execs={} secs={:.1} outcomes={} crashes={} corpus={}",
            t.name, s.execs, s.secs, s.outcomes, s.crashes, s.corpus
        );
        if s.crashes > 0 {
            crashed.push(t.name);
        }
    }
    // One target: its line above is the last (long-run logs end with it).
    if chosen.len() > 1 {
        println!(
            "fuzz: {} target(s) in {:.1} s, {} with crashes{}",
            chosen.len(),
            start.elapsed().as_secs_f64(),
            crashed.len(),
            if crashed.is_empty() {
                String::new()
            } else {
                format!(
                    ": {} (inputs under target/fuzz/<target>/)",
                    crashed.join(", ")
                )
            }
        );
    }
    if crashed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

// --- parent ------------------------------------------------------------------------

/// What a child reports in `stats` (rewritten five times a second).
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    execs: u64,
    secs: f64,
    outcomes: usize,
    crashes: u64,
    corpus: usize,
}

impl Stats {
    fn line(&self) -> String {
        format!(
            "{} {:.3} {} {} {}\n",
            self.execs, self.secs, self.outcomes, self.crashes, self.corpus
        )
    }

    fn read(path: &Path) -> Stats {
        let s = std::fs::read_to_string(path).unwrap_or_default();
        let f: Vec<&str> = s.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        Stats {
            execs: num(0) as u64,
            secs: num(1),
            outcomes: num(2) as usize,
            crashes: num(3) as u64,
            corpus: num(4) as usize,
        }
    }
}

/// The next free `<prefix>-<n>.<role>` in `dir`.
fn next_name(dir: &Path, prefix: &str, role: &str) -> PathBuf {
    (0..)
        .map(|n| dir.join(format!("{prefix}-{n}.{role}")))
        .find(|p| !p.exists())
        .expect("a free name")
}

/// The input a dead child was running, kept as `<prefix>-<n>.<role>`.
fn keep_current(dir: &Path, prefix: &str) -> Option<PathBuf> {
    let cur = dir.join("current");
    let role = std::fs::read_to_string(dir.join("current.role")).unwrap_or_else(|_| "bin".into());
    let to = next_name(dir, prefix, role.trim());
    std::fs::copy(&cur, &to).ok()?;
    Some(to)
}

fn prlimit_available() -> bool {
    Command::new("prlimit")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Fuzz `t` for `secs` (and at most `execs` runs) in child processes (a new one after
/// each that died).
fn run_parent(t: &Target, secs: f64, execs: u64) -> Stats {
    use std::os::unix::process::ExitStatusExt;
    let dir = fuzz_dir(t.name);
    let _ = std::fs::create_dir_all(&dir);
    let exe = std::env::current_exe().expect("own executable");
    let limit = prlimit_available();
    if !limit {
        eprintln!("fuzz: `prlimit` not found; children run without an address-space limit");
    }
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut total = Stats::default();
    for restart in 0..MAX_CHILDREN {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .as_secs_f64();
        if restart > 0 && (left < 0.5 || total.execs >= execs) {
            break;
        }
        let stats_path = dir.join("stats");
        let _ = std::fs::remove_file(&stats_path);
        let mut cmd = if limit {
            let mut c = Command::new("prlimit");
            c.arg(format!("--as={AS_LIMIT}")).arg("--").arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(["--child", t.name, "--seconds", &format!("{left:.3}")])
            .args(["--restart", &restart.to_string()])
            .args(["--execs", &execs.saturating_sub(total.execs).to_string()])
            .env("VORTEX_MEMORY_BUDGET", CHILD_BUDGET)
            .env("RAYON_NUM_THREADS", "1")
            .env("RUST_BACKTRACE", "0");
        if restart > 0 {
            cmd.arg("--skip-replay");
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("fuzz {}: cannot start a child: {e}", t.name);
                total.crashes += 1;
                break;
            }
        };
        let kill_at = Instant::now() + Duration::from_secs_f64(left + GRACE_SECS);
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() > kill_at => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => break None,
            }
        };
        let s = Stats::read(&stats_path);
        total.execs += s.execs;
        total.secs += s.secs;
        total.crashes += s.crashes;
        total.outcomes = total.outcomes.max(s.outcomes);
        total.corpus = total.corpus.max(s.corpus);
        let how = match status {
            Some(st) if st.success() => break,
            Some(st) => match st.signal() {
                Some(sig) => format!("killed by signal {sig}"),
                None => format!("exited with {}", st.code().unwrap_or(-1)),
            },
            None => format!("hung (no exit {GRACE_SECS} s after its time)"),
        };
        total.crashes += 1;
        let prefix = if status.is_none() { "hang" } else { "crash" };
        match keep_current(&dir, prefix) {
            Some(p) => eprintln!(
                "CRASH {}: child {how}; input kept in {}",
                t.name,
                p.display()
            ),
            None => eprintln!("CRASH {}: child {how}; its input could not be kept", t.name),
        }
    }
    total
}

// --- child -------------------------------------------------------------------------

/// The message and place of the last panic (the hook prints nothing).
static PANIC: Mutex<String> = Mutex::new(String::new());

fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(non-string payload)".into());
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        if let Ok(mut p) = PANIC.lock() {
            *p = format!("{msg} at {at}");
            if std::env::var_os("FUZZ_BACKTRACE").is_some() {
                let bt = std::backtrace::Backtrace::force_capture();
                p.push_str(&format!("\n{bt}"));
            }
        }
    }));
}

/// One seed or queued input: its role (index into the target's roles) and bytes.
#[derive(Clone)]
struct Input {
    role: usize,
    data: Vec<u8>,
    name: String,
}

/// The role of a seed file, from the longest role name its name ends with.
fn role_of(t: &Target, file: &str) -> Option<usize> {
    t.roles
        .iter()
        .enumerate()
        .filter(|(_, r)| file.ends_with(&format!(".{}", r.name)))
        .max_by_key(|(_, r)| r.name.len())
        .map(|(i, _)| i)
}

fn load_corpus(t: &Target) -> Vec<Input> {
    let dir = corpus_root().join(t.name);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
        .into_iter()
        .filter_map(|name| {
            let role = role_of(t, &name)?;
            let data = std::fs::read(dir.join(&name)).ok()?;
            Some(Input { role, data, name })
        })
        .collect()
}

/// A target's work directory with its base files written.
struct Work {
    dir: PathBuf,
    base: HashMap<usize, Vec<u8>>,
}

impl Work {
    fn new(t: &Target, seeds: &[Input], dir: PathBuf) -> Work {
        let _ = std::fs::remove_dir_all(&dir);
        let mut base = HashMap::new();
        for (i, r) in t.roles.iter().enumerate() {
            let p = dir.join(r.path);
            let _ = std::fs::create_dir_all(p.parent().expect("parent"));
            if r.base {
                let want = format!("seed.{}", r.name);
                let seed = seeds.iter().find(|s| s.name == want);
                let data = seed.map(|s| s.data.clone()).unwrap_or_else(|| {
                    panic!("corpus/{}/{want} is missing (run --make-corpus)", t.name)
                });
                let _ = std::fs::write(&p, &data);
                base.insert(i, data);
            }
        }
        Work { dir, base }
    }

    /// Put `data` in place of role `role`'s file, run the target, restore the set.
    fn exec(&self, t: &Target, role: usize, data: &[u8]) -> std::thread::Result<String> {
        let r = &t.roles[role];
        let p = self.dir.join(r.path);
        let _ = std::fs::write(&p, data);
        if let Some(h) = r.hides {
            let _ = std::fs::remove_file(self.dir.join(h));
        }
        let out = std::panic::catch_unwind(AssertUnwindSafe(|| (t.run)(&self.dir, r.name)));
        match self.base.get(&role) {
            Some(b) => {
                let _ = std::fs::write(&p, b);
            }
            None => {
                let _ = std::fs::remove_file(&p);
            }
        }
        if let Some(h) = r.hides {
            let hi = t
                .roles
                .iter()
                .position(|x| x.path == h)
                .expect("hidden role");
            let _ = std::fs::write(self.dir.join(h), &self.base[&hi]);
        }
        out
    }
}

/// Run `paths` once each through `t` in this process and print the outcomes.
fn reproduce(t: &Target, paths: &[PathBuf]) -> ExitCode {
    quiet_panics();
    alloc::arm();
    let seeds = load_corpus(t);
    let work = Work::new(t, &seeds, fuzz_dir(t.name).join("repro"));
    let mut failed = false;
    for p in paths {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let Some(role) = role_of(t, name) else {
            eprintln!("{}: the name must end in .<role>", p.display());
            return ExitCode::from(2);
        };
        let data = std::fs::read(p).unwrap_or_default();
        match work.exec(t, role, &data) {
            Ok(k) => println!("{}: {k}", p.display()),
            Err(_) => {
                failed = true;
                let m = PANIC.lock().map(|m| m.clone()).unwrap_or_default();
                println!("{}: PANIC {m}", p.display());
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn child_main(t: &Target, secs: f64, max_execs: u64, restart: u32, replay: bool) -> ExitCode {
    quiet_panics();
    alloc::arm();
    let dir = fuzz_dir(t.name);
    let _ = std::fs::create_dir_all(&dir);
    let seeds = load_corpus(t);
    let work = Work::new(t, &seeds, dir.join("work"));
    let mut corpus: Vec<Input> = seeds
        .iter()
        .filter(|s| t.roles[s.role].fuzz)
        .cloned()
        .collect();
    if corpus.is_empty() {
        eprintln!(
            "fuzz {}: no seeds in {}",
            t.name,
            corpus_root().join(t.name).display()
        );
        return ExitCode::from(3);
    }
    let env_seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut rng =
        Rng::new(fnv1a(t.name.as_bytes()) ^ env_seed ^ (restart as u64).wrapping_mul(0x9E37_79B9));
    let start = Instant::now();
    let mut stats = Stats::default();
    let mut outcomes: HashMap<String, u64> = HashMap::new();
    let mut panic_sites: HashMap<String, u32> = HashMap::new();
    let mut last_role = usize::MAX;
    let mut last_report = Instant::now();
    let cur = dir.join("current");
    let mut one =
        |input: &Input, corpus: &mut Vec<Input>, stats: &mut Stats, last_role: &mut usize| {
            if *last_role != input.role {
                let _ = std::fs::write(dir.join("current.role"), t.roles[input.role].name);
                *last_role = input.role;
            }
            let _ = std::fs::write(&cur, &input.data);
            stats.execs += 1;
            match work.exec(t, input.role, &input.data) {
                Ok(k) => {
                    let n = outcomes.entry(k).or_insert(0);
                    *n += 1;
                    if *n == 1 && corpus.len() < MAX_CORPUS && input.data.len() <= 256 << 10 {
                        corpus.push(input.clone());
                    }
                }
                Err(_) => {
                    stats.crashes += 1;
                    let m = PANIC.lock().map(|m| m.clone()).unwrap_or_default();
                    // Keep the first few inputs of each panic site (numbers masked).
                    let site: String = m.chars().filter(|c| !c.is_ascii_digit()).collect();
                    let seen = panic_sites.entry(site).or_insert(0u32);
                    *seen += 1;
                    if *seen <= 3 {
                        let to = next_name(&dir, "crash", t.roles[input.role].name);
                        let _ = std::fs::write(&to, &input.data);
                        eprintln!(
                            "CRASH {}: panic: {m}; input kept in {}",
                            t.name,
                            to.display()
                        );
                    }
                }
            }
            stats.outcomes = outcomes.len();
        };
    if replay {
        for s in &corpus.clone() {
            one(s, &mut corpus, &mut stats, &mut last_role);
        }
    }
    let seed_count = corpus.len();
    while start.elapsed().as_secs_f64() < secs && stats.execs < max_execs {
        // Half the time a committed seed, else anything queued since.
        let i = if rng.chance(1, 2) {
            rng.below(seed_count)
        } else {
            rng.below(corpus.len())
        };
        let mut input = corpus[i].clone();
        let same: Vec<usize> = (0..corpus.len())
            .filter(|&j| corpus[j].role == input.role)
            .collect();
        let other = corpus[*rng.pick(&same)].data.clone();
        let fmt = t.roles[input.role].fmt;
        structured::mutate(&mut rng, fmt, &mut input.data, &other);
        if fmt == structured::Fmt::Jpeg {
            images::jpeg_keep_end(&mut rng, &mut input.data);
        }
        input.data.truncate(MAX_INPUT);
        one(&input, &mut corpus, &mut stats, &mut last_role);
        if last_report.elapsed() > Duration::from_millis(200) {
            stats.secs = start.elapsed().as_secs_f64();
            stats.corpus = corpus.len();
            let _ = std::fs::write(dir.join("stats"), stats.line());
            last_report = Instant::now();
        }
    }
    stats.secs = start.elapsed().as_secs_f64();
    stats.corpus = corpus.len();
    let _ = std::fs::write(dir.join("stats"), stats.line());
    let mut list: Vec<(&String, &u64)> = outcomes.iter().collect();
    list.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let text: String = list.iter().map(|(k, n)| format!("{n:>9} {k}\n")).collect();
    let _ = std::fs::write(dir.join("outcomes.txt"), text);
    ExitCode::SUCCESS
}
