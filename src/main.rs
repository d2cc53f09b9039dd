//! The `vortexdb` binary: parses arguments and maps errors to exit codes
//! (0 done, 1 bad input, 2 internal error).

fn main() -> std::process::ExitCode {
    vortexdb::cli::main()
}
