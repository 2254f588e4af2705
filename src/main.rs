//! `trustwatch`: wiring only. See the library for everything else.

use clap::Parser;
use trustwatch::cli::{Cli, Command, UsageError};

fn main() {
    // ring for every TLS connection, the Kubernetes client's included (BENCHMARKS.md).
    trustwatch::fetch::install_default_provider();
    let cli = Cli::parse();
    // One image is one chain of requests: a single-threaded runtime spares the worker threads
    // and the wake-ups between them (BENCHMARKS.md, cold verification). Everything else runs
    // on every core.
    let single = matches!(&cli.command, Command::Verify(args) if args.images.len() <= 1);
    let runtime = if single {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()
    };
    let code = match runtime.expect("the async runtime starts").block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<UsageError>().is_some() { 2 } else { 1 }
        }
    };
    std::process::exit(code);
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(args) => {
            trim_freed_memory_periodically();
            trustwatch::cli::run(*args).await
        }
        Command::Verify(args) => trustwatch::cli::verify(*args).await,
        Command::Audit(args) => trustwatch::cli::audit(*args).await,
        Command::Import(args) => trustwatch::cli::import(*args),
        Command::Crds => {
            print!("{}", trustwatch::crd::crds_yaml());
            Ok(0)
        }
    }
}

/// How often the operator hands freed heap memory back to the kernel.
const MEMORY_TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// glibc's allocator keeps the memory a program frees in its arenas, for reuse. The operator's
/// peaks (the initial LIST of every pod, a first full scan) are freed but stayed resident: 553
/// MiB at 50,000 pods (BENCHMARKS.md, memory). `malloc_trim(0)` returns every whole free page
/// of every arena to the kernel. (Here, not in the library, which forbids `unsafe`.)
fn trim_freed_memory_periodically() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    tokio::spawn(async {
        let mut every = tokio::time::interval(MEMORY_TRIM_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            // SAFETY: malloc_trim takes no pointer; it changes only the allocator's free lists.
            unsafe { libc::malloc_trim(0) };
        }
    });
}
