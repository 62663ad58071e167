//! The `ussd-gateway` binary: the command line is in the library (`src/cli/`).

use std::process::ExitCode;

use mimalloc::MiMalloc;

/// A hop allocates many small, short-lived buffers; glibc's malloc took about 13% of
/// the gateway's CPU under load (perf), mimalloc much less (docs/performance.md).
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() -> ExitCode {
    ussd_gateway::cli::main()
}
