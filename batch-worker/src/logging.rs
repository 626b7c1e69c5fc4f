//! The worker's logging: human-readable (warnings and up) on a terminal, JSON lines (info and up)
//! otherwise, which is what CloudWatch Logs receives from Batch. `RUST_LOG` overrides. (The CLI
//! logs readable text only, warnings unless `-v`: see its `init_logging`.)

use std::io::IsTerminal;

pub fn init() {
    let terminal = std::io::stderr().is_terminal();
    let default = if terminal { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if terminal {
        builder.init();
    } else {
        builder.json().init();
    }
}
