//! `rpx`: runs an rpx-core stack from a config file.
//!
//! The binary only does what a library cannot: command line, logging,
//! signals and the process lifecycle. Everything else is in `rpx-core`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use rpx_core::config::{self, Config, ConfigErrors, LoadOptions, Loaded};
use rpx_core::server::{serve_with, ServeOptions};
use rpx_core::{stack, Rpx};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The config used when `--config` is not given.
const DEFAULT_CONFIG: &str = include_str!("default.toml");

#[derive(Parser)]
#[command(
    name = "rpx",
    version,
    about = "A reverse proxy that runs nginx-style and TOML configs"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// nginx habit: test the configuration given with `-c` and exit (as `rpx check`).
    #[arg(short = 't')]
    test: bool,
    /// nginx habit: the config file for `-t`.
    #[arg(short = 'c', requires = "test")]
    conf: Option<PathBuf>,
    /// Known directives rpx does not implement yet (TLS, access control…)
    /// become warnings instead of errors; unknown directives stay errors.
    #[arg(long, global = true)]
    lenient: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a config (the embedded welcome config when none is given).
    Run {
        /// Config file: `.toml`, or nginx syntax for any other extension.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Worker threads (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
        /// How long a stop waits for requests in flight, in seconds.
        #[arg(long, default_value_t = 30)]
        shutdown_timeout: u64,
    },
    /// Validate a config: exit 0 when it is valid, 1 listing every error.
    Check {
        /// Config file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Print a config (nginx syntax) as the equivalent TOML.
    Convert {
        /// Config file.
        #[arg(short, long)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let opts = LoadOptions {
        lenient: cli.lenient,
    };
    let Some(command) = cli.command else {
        return match (cli.test, cli.conf) {
            (true, Some(conf)) => check(&conf, opts),
            _ => {
                eprintln!(
                    "rpx: use a subcommand (run, check, convert) or `rpx -t -c FILE`; see --help"
                );
                ExitCode::from(2)
            }
        };
    };
    match command {
        Command::Check { config } => check(&config, opts),
        Command::Convert { config } => convert(&config, opts),
        Command::Run {
            config,
            threads,
            shutdown_timeout,
        } => {
            // One thread: a current-thread runtime, so a request never hops
            // between threads (nginx's one-worker shape, for benchmarks and
            // small machines).
            let mut rt = if threads == Some(1) {
                tokio::runtime::Builder::new_current_thread()
            } else {
                tokio::runtime::Builder::new_multi_thread()
            };
            if let Some(n) = threads.filter(|n| *n > 1) {
                rt.worker_threads(n);
            }
            let rt = match rt.enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("rpx: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            rt.block_on(run(
                config.as_deref(),
                opts,
                Duration::from_secs(shutdown_timeout),
            ))
        }
    }
}

/// Loads a config, printing its warnings.
fn load(path: Option<&Path>, opts: LoadOptions) -> Result<Config, ConfigErrors> {
    let loaded = match path {
        Some(p) => config::load_with(p, opts),
        None => match config::parse_toml(DEFAULT_CONFIG, "<embedded default>") {
            Ok(config) => Loaded {
                config,
                ..Loaded::default()
            },
            Err(e) => Loaded {
                errors: e.0,
                ..Loaded::default()
            },
        },
    };
    for w in &loaded.warnings {
        eprintln!("rpx: warning: {w}");
    }
    loaded.into_result().map(|(c, _)| c)
}

fn report(errors: &ConfigErrors) {
    for e in &errors.0 {
        eprintln!("rpx: error: {e}");
    }
}

fn convert(path: &Path, opts: LoadOptions) -> ExitCode {
    match load(Some(path), opts).and_then(|c| config::to_toml(&c)) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(errors) => {
            report(&errors);
            ExitCode::FAILURE
        }
    }
}

/// Like `nginx -t`: every warning and error, exit 1 on any error.
fn check(path: &Path, opts: LoadOptions) -> ExitCode {
    let loaded = config::load_with(path, opts);
    for w in &loaded.warnings {
        eprintln!("rpx: warning: {w}");
    }
    let errors = if loaded.errors.is_empty() {
        match stack::compile(&loaded.config) {
            Ok(snapshot) => {
                for w in snapshot.warnings() {
                    eprintln!("rpx: warning: {w}");
                }
                for line in snapshot.summary() {
                    println!("{line}");
                }
                println!("rpx: the configuration file {} is valid", path.display());
                return ExitCode::SUCCESS;
            }
            Err(e) => e.0,
        }
    } else if config::is_toml(path) {
        // The TOML front-end keeps what it understood: compile that too,
        // so one run lists every error.
        config::check_file(path)
    } else {
        loaded.errors
    };
    let errors = ConfigErrors(errors);
    report(&errors);
    eprintln!(
        "rpx: configuration file {} test failed ({} error{})",
        path.display(),
        errors.0.len(),
        if errors.0.len() == 1 { "" } else { "s" }
    );
    ExitCode::FAILURE
}

async fn run(path: Option<&Path>, opts: LoadOptions, shutdown_timeout: Duration) -> ExitCode {
    let snapshot = match load(path, opts).and_then(|c| stack::compile(&c)) {
        Ok(s) => s,
        Err(errors) => {
            report(&errors);
            return ExitCode::FAILURE;
        }
    };
    for w in snapshot.warnings() {
        eprintln!("rpx: warning: {w}");
    }
    for line in snapshot.summary() {
        tracing::info!("{line}");
    }
    let specs = snapshot.listeners().to_vec();
    let rpx = Rpx::new(snapshot);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for spec in specs {
        let listener = match TcpListener::bind(spec.addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("rpx: error: cannot listen on {}: {e}", spec.addr);
                return ExitCode::FAILURE;
            }
        };
        let bound = listener
            .local_addr()
            .map_or_else(|_| spec.addr.to_string(), |a| a.to_string());
        // One line per listener on stdout: the readiness signal scripts and
        // tests wait for (the actual port, when the config says port 0).
        let scheme = if spec.tls.is_some() { "https" } else { "http" };
        println!(
            "rpx: listening on {bound} (configured {}, {scheme})",
            spec.addr
        );
        let opts = ServeOptions {
            header_timeout: spec.header_timeout,
            shutdown_timeout,
            listen: Some(spec.addr),
            tls: spec.tls.clone(),
        };
        let mut stop = stop_rx.clone();
        let svc = rpx.clone();
        tasks.push(tokio::spawn(async move {
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            serve_with(listener, svc, opts, stopped).await
        }));
    }
    wait_for_stop_signal().await;
    tracing::info!("stopping: no new connections; waiting for requests in flight");
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

async fn wait_for_stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut quit)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::quit()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = quit.recv() => {}
    }
}
