//! `vortexdb view`: the Python viewer run with the interpreter of `VORTEX_PYTHON`. An
//! interpreter that is missing or lacks the package fails with the way to install it;
//! one that has it gets the arguments, and its exit status is the command's.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{bin, new_store, s};

/// `vortexdb view ARGS` with `VORTEX_PYTHON` set to `python`.
fn view(python: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("view")
        .args(args)
        .env("VORTEX_PYTHON", python)
        .output()
        .expect("spawn vortexdb")
}

/// Exit 1 and every needle in the message.
fn fails_with(o: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks '{n}': {err}");
    }
}

const INSTALL: &str = "pip install \"./bindings/python[view]\"";

#[test]
fn view_without_a_usable_python_says_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_store(dir.path(), "db");
    // No such interpreter.
    let missing = dir.path().join("no-python");
    let o = view(&missing, &[s(&db)]);
    fails_with(
        &o,
        &[
            "cannot run the Python interpreter",
            s(&missing),
            "VORTEX_PYTHON",
            INSTALL,
            ".venv-py/bin/python",
        ],
    );
    // Not a Python at all.
    if Path::new("/bin/false").exists() {
        let o = view(Path::new("/bin/false"), &[s(&db)]);
        fails_with(&o, &["did not run as Python 3", INSTALL]);
    }
    // Not a store: said before any Python runs.
    let o = view(&missing, &[s(&dir.path().join("nowhere"))]);
    fails_with(&o, &["not a vortexdb store", "vortexdb init"]);
    // A Python without the package (the system's, when it lacks it).
    let system = Path::new("/usr/bin/python3");
    let has_it = Command::new(system)
        .args(["-c", "import vortexdb"])
        .output()
        .map(|o| o.status.success());
    match has_it {
        Ok(false) => {
            let o = view(system, &[s(&db)]);
            fails_with(&o, &["/usr/bin/python3", "cannot import vortexdb", INSTALL]);
        }
        _ => eprintln!("skipped: /usr/bin/python3 is missing or has vortexdb"),
    }
}

#[cfg(unix)]
#[test]
fn view_runs_the_python_module_with_the_arguments_and_its_exit_status() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = new_store(dir.path(), "db");
    // A stand-in interpreter: the probe (`-c ...`) finds everything; the viewer prints
    // its arguments and exits 7.
    let fake = dir.path().join("python");
    std::fs::write(
        &fake,
        "#!/bin/sh\nif [ \"$1\" = -c ]; then exit 0; fi\necho \"$@\"\nexit 7\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = view(&fake, &[s(&db), "--port", "8123", "--sample", "s1"]);
    assert_eq!(o.status.code(), Some(7), "{o:?}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("-m vortexdb view {} --port 8123 --sample s1", s(&db))
    );
    // Defaults are Python's own: nothing but the store is passed.
    let o = view(&fake, &[s(&db)]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("-m vortexdb view {}", s(&db))
    );
}
