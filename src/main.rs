//! `trustwatch`: wiring only. See the library for everything else.

use clap::Parser;
use trustwatch::cli::{Cli, Command, UsageError};

#[tokio::main]
async fn main() {
    // ring for every TLS connection, the Kubernetes client's included (BENCHMARKS.md).
    trustwatch::fetch::install_default_provider();
    let cli = Cli::parse();
    let code = match run(cli).await {
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
        Command::Run(args) => trustwatch::cli::run(*args).await,
        Command::Verify(args) => trustwatch::cli::verify(*args).await,
        Command::Audit(args) => trustwatch::cli::audit(*args).await,
        Command::Import(args) => trustwatch::cli::import(*args),
        Command::Crds => {
            print!("{}", trustwatch::crd::crds_yaml());
            Ok(0)
        }
    }
}
