//! The commands whose work is the Python package's (`view`: the browser viewer on
//! neuroglancer; `archive`: shards on Ray): run `python -m vortexdb COMMAND ARGS...`
//! with the interpreter named by `VORTEX_PYTHON` (default `python3`). The interpreter
//! is first asked whether it can find the packages the command needs (a clear error
//! with the way to install them otherwise); then, on Unix, it replaces this process
//! (exec), so Ctrl-C, the exit status and any signal are the command's own, with
//! nothing left waiting in between. Elsewhere it runs as a child whose exit status is
//! forwarded. The library knows nothing of this.

use std::ffi::OsString;
use std::process::{Command, Stdio};

use vortexdb::{Error, Result};

/// The environment variable naming the Python interpreter.
pub const PYTHON_ENV: &str = "VORTEX_PYTHON";

/// A Python command: its name under `python -m vortexdb`, the packages it needs and
/// how to install them.
pub struct PythonCommand {
    /// `view`, `archive`.
    pub name: &'static str,
    /// Packages it imports (checked without importing them).
    pub needs: &'static [&'static str],
    /// What to do when the interpreter cannot run it.
    pub hint: &'static str,
}

impl PythonCommand {
    /// Run it with `args`: its exit status (when it does not replace this process).
    pub fn run(&self, args: &[OsString]) -> Result<u8> {
        let (python, named) = match std::env::var_os(PYTHON_ENV) {
            Some(p) if !p.is_empty() => {
                let named = format!("'{}' ({PYTHON_ENV})", p.to_string_lossy());
                (p, named)
            }
            _ => (
                OsString::from("python3"),
                format!("'python3' ({PYTHON_ENV} is not set)"),
            ),
        };
        self.probe(&python, &named)?;
        let mut cmd = Command::new(&python);
        cmd.args(["-m", "vortexdb", self.name]).args(args);
        self.exec(cmd, &named)
    }

    /// The error for an interpreter that cannot run the command.
    fn unusable(&self, message: String) -> Error {
        Error::bad_input(self.name, format!("{message}; {}", self.hint))
    }

    /// Check that `python` runs and finds the packages.
    fn probe(&self, python: &OsString, named: &str) -> Result<()> {
        let list: Vec<String> = self.needs.iter().map(|m| format!("'{m}'")).collect();
        let code = format!(
            "import importlib.util as u\nprint(' '.join(m for m in ({},) if u.find_spec(m) is None))",
            list.join(", ")
        );
        let out = Command::new(python)
            .args(["-c", &code])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                self.unusable(format!("cannot run the Python interpreter {named}: {e}"))
            })?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err.lines().last().unwrap_or("").trim();
            return Err(self.unusable(format!(
                "{named} did not run as Python 3 ({}{}{last})",
                out.status,
                if last.is_empty() { "" } else { ": " }
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let missing: Vec<&str> = text
            .lines()
            .last()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        if !missing.is_empty() {
            return Err(self.unusable(format!(
                "the Python interpreter {named} cannot import {}",
                missing.join(", ")
            )));
        }
        Ok(())
    }

    /// Replace this process with the command (Unix): only returns on failure.
    #[cfg(unix)]
    fn exec(&self, mut cmd: Command, named: &str) -> Result<u8> {
        use std::os::unix::process::CommandExt;
        let e = cmd.exec();
        Err(self.unusable(format!("cannot run the Python interpreter {named}: {e}")))
    }

    /// Run the command as a child and forward its exit status (the child shares the
    /// console, so Ctrl-C reaches it).
    #[cfg(not(unix))]
    fn exec(&self, mut cmd: Command, named: &str) -> Result<u8> {
        let status = cmd.status().map_err(|e| {
            self.unusable(format!("cannot run the Python interpreter {named}: {e}"))
        })?;
        Ok(status.code().map_or(1, |c| c.clamp(0, 255) as u8))
    }
}
