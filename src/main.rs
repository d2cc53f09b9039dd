//! The `vortexdb` binary: a thin face over the library. It parses arguments (clap),
//! calls one library function per command, prints the result (text or `--json`), adds
//! next-step hints to errors and maps them to exit codes (0 done, 1 bad input,
//! 2 internal error).

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
