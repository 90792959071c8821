//! `rpx`: runs an rpx-core stack from a config file.
//!
//! The binary only does what a library cannot: command line, logging,
//! signals and the process lifecycle. Everything else is in `rpx-core`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

mod logging;

// mimalloc: a proxied request allocates ~16 short-lived blocks, among them
// 16 KiB read buffers; glibc's malloc took ~1,000 more instructions per
// request for them (callgrind, see benches/README.md). Its v2 series
// (Cargo.toml) takes ~500 fewer than v3 (medians of 6-8 runs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use rpx_core::config::{self, Config, ConfigErrors, LoadOptions, Loaded};
use rpx_core::server::ListenerSet;
use rpx_core::server::ListenerSpec;
use rpx_core::{stack, Rpx, Snapshot};

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
    /// nginx habit: signal the running rpx: `reload`, `stop` (fast) or `quit` (graceful).
    #[arg(short = 's', value_name = "SIGNAL")]
    signal: Option<String>,
    /// Known directives rpx does not implement yet (access control…)
    /// become warnings instead of errors; unknown directives stay errors.
    #[arg(long, global = true)]
    lenient: bool,
    /// The pid file `run` writes and `reload` / `-s` read.
    #[arg(long, global = true, value_name = "FILE")]
    pid_file: Option<PathBuf>,
}

/// Where `rpx reload` and `rpx -s` look for the pid without `--pid-file`.
const DEFAULT_PID_FILE: &str = "/run/rpx.pid";

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
        /// How long a stop waits for requests in flight, in seconds
        /// (default: the config's `worker_shutdown_timeout`, else 30).
        #[arg(long)]
        shutdown_timeout: Option<u64>,
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
    /// Make the running rpx reload its config (sends SIGHUP to the pid in
    /// the pid file).
    Reload,
}

fn main() -> ExitCode {
    let logging = logging::Logging::init();
    let cli = Cli::parse();
    let opts = LoadOptions {
        lenient: cli.lenient,
    };
    if let Some(signal) = &cli.signal {
        return send_signal(signal, cli.pid_file.as_deref());
    }
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
        Command::Reload => send_signal("reload", cli.pid_file.as_deref()),
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
                &logging,
                config.as_deref(),
                opts,
                shutdown_timeout.map(Duration::from_secs),
                cli.pid_file.as_deref(),
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
        rpx_core::stack::check_file(path)
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

/// Sends `reload`, `stop` or `quit` to the rpx whose pid is in the pid file.
fn send_signal(name: &str, pid_file: Option<&Path>) -> ExitCode {
    use rustix::process::{kill_process, Pid, Signal};
    let signal = match name {
        "reload" => Signal::HUP,
        "stop" => Signal::TERM,
        "quit" => Signal::QUIT,
        "reopen" => Signal::USR1,
        other => {
            eprintln!("rpx: unknown signal \"{other}\": use reload, stop, quit or reopen");
            return ExitCode::from(2);
        }
    };
    let file = pid_file.unwrap_or(Path::new(DEFAULT_PID_FILE));
    let pid = std::fs::read_to_string(file)
        .map_err(|e| e.to_string())
        .and_then(|t| t.trim().parse::<i32>().map_err(|e| e.to_string()))
        .and_then(|n| Pid::from_raw(n).ok_or_else(|| "not a pid".to_owned()));
    let pid = match pid {
        Ok(p) => p,
        Err(e) => {
            eprintln!("rpx: cannot read the pid from {}: {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    match kill_process(pid, signal) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rpx: cannot signal process {}: {e}", pid.as_raw_nonzero());
            ExitCode::FAILURE
        }
    }
}

/// Loads and compiles the config, printing warnings and errors.
fn build(path: Option<&Path>, opts: LoadOptions, previous: Option<&Snapshot>) -> Option<Snapshot> {
    let compile = stack::CompileOptions {
        previous,
        ..Default::default()
    };
    match load(path, opts).and_then(|c| stack::compile_with(&c, &compile)) {
        Ok(s) => {
            for w in s.warnings() {
                eprintln!("rpx: warning: {w}");
            }
            Some(s)
        }
        Err(errors) => {
            report(&errors);
            None
        }
    }
}

/// Readiness lines on stdout, one per listener, that scripts and tests wait
/// for (with the actual port when the config says port 0).
fn announce(bound: &[(std::net::SocketAddr, std::net::SocketAddr)], specs: &[ListenerSpec]) {
    for (configured, actual) in bound {
        let tls = specs
            .iter()
            .any(|s| s.addr == *configured && s.tls.is_some());
        let scheme = if tls { "https" } else { "http" };
        println!("rpx: listening on {actual} (configured {configured}, {scheme})");
    }
}

/// Points the log where the snapshot's `error_log` says; false (with the
/// reason on stderr) when its file cannot be opened.
fn apply_log(logging: &logging::Logging, snapshot: &Snapshot) -> bool {
    match logging.apply(snapshot.error_log()) {
        Ok(()) => true,
        Err(e) => {
            let pos = snapshot
                .error_log()
                .map(|c| c.pos.clone())
                .unwrap_or_default();
            eprintln!("rpx: error: {}", config::ConfigError::new(pos, e));
            false
        }
    }
}

async fn run(
    logging: &logging::Logging,
    path: Option<&Path>,
    opts: LoadOptions,
    shutdown_timeout: Option<Duration>,
    pid_file: Option<&Path>,
) -> ExitCode {
    // Before anything can announce readiness: a HUP that arrives early must
    // reload, not kill (the default action).
    let Ok(mut signals) = Signals::new() else {
        eprintln!("rpx: error: cannot install signal handlers");
        return ExitCode::FAILURE;
    };
    // Before the config is compiled: its metric handles register here.
    if let Err(e) = rpx_core::metrics::install() {
        tracing::warn!("metrics are off: {e}");
    }
    let Some(snapshot) = build(path, opts, None) else {
        return ExitCode::FAILURE;
    };
    if !apply_log(logging, &snapshot) {
        return ExitCode::FAILURE;
    }
    for line in snapshot.summary() {
        tracing::info!("{line}");
    }
    let specs = snapshot.listeners().to_vec();
    // Upstream health checks and DNS re-resolution.
    snapshot.start_background();
    let rpx = Rpx::new(snapshot);
    // The command line wins over the config; nginx's default is no limit,
    // rpx's 30 s. Read at startup: a reload does not change it.
    let shutdown_timeout = shutdown_timeout
        .or(rpx.snapshot().shutdown_timeout())
        .unwrap_or(Duration::from_secs(30));
    let mut listeners = ListenerSet::new(rpx.clone(), shutdown_timeout);
    let bound = match listeners.apply(&specs).await {
        Ok(bound) => bound,
        Err(e) => {
            eprintln!("rpx: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The pid file first: once rpx says it listens, `rpx reload` must work.
    if let Some(file) = pid_file {
        if let Err(e) = std::fs::write(file, format!("{}\n", std::process::id())) {
            eprintln!(
                "rpx: error: cannot write the pid file {}: {e}",
                file.display()
            );
            return ExitCode::FAILURE;
        }
    }
    announce(&bound, &specs);
    loop {
        match signals.next().await {
            Sig::Reload => reload(logging, path, opts, &rpx, &mut listeners).await,
            Sig::Reopen => {
                tracing::info!("SIGUSR1: reopening log files");
                rpx_core::accesslog::reopen_all();
                if let Err(e) = logging.reopen() {
                    tracing::error!("{e}");
                }
            }
            Sig::Stop => break,
        }
    }
    tracing::info!("stopping: no new connections; waiting for requests in flight");
    listeners.shutdown().await;
    if let Some(file) = pid_file {
        let _ = std::fs::remove_file(file);
    }
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// Reads and compiles the config anew and swaps it in; listeners follow.
/// Anything that fails leaves the running config as it was.
async fn reload(
    logging: &logging::Logging,
    path: Option<&Path>,
    opts: LoadOptions,
    rpx: &Rpx,
    listeners: &mut ListenerSet<Rpx>,
) {
    let Some(snapshot) = build(path, opts, Some(&rpx.snapshot())).filter(|s| apply_log(logging, s))
    else {
        rpx_core::metrics::reload_done(false);
        println!("rpx: reload failed: the running configuration stays");
        return;
    };
    let specs = snapshot.listeners().to_vec();
    // Health checks and DNS refresh of the new groups; the old snapshot's
    // tasks end when it is dropped.
    snapshot.start_background();
    // The snapshot goes first so that new listeners route with it; a bind
    // failure puts the previous one back.
    let previous = rpx.swap(snapshot);
    match listeners.apply(&specs).await {
        Ok(bound) => {
            let new: Vec<_> = bound
                .into_iter()
                .filter(|(c, _)| !previous.listeners().iter().any(|p| p.addr == *c))
                .collect();
            announce(&new, &specs);
            tracing::info!("configuration reloaded");
            rpx_core::metrics::reload_done(true);
            println!("rpx: reloaded");
        }
        Err(e) => {
            let _ = logging.apply(previous.error_log());
            rpx.restore(previous);
            rpx_core::metrics::reload_done(false);
            eprintln!("rpx: error: {e}");
            println!("rpx: reload failed: the running configuration stays");
        }
    }
}

enum Sig {
    Reload,
    Reopen,
    Stop,
}

/// The signals rpx acts on: HUP reloads, USR1 reopens logs, TERM/INT/QUIT stop.
struct Signals {
    hup: tokio::signal::unix::Signal,
    usr1: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    quit: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            hup: signal(SignalKind::hangup())?,
            usr1: signal(SignalKind::user_defined1())?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            quit: signal(SignalKind::quit())?,
        })
    }

    async fn next(&mut self) -> Sig {
        tokio::select! {
            _ = self.hup.recv() => Sig::Reload,
            _ = self.usr1.recv() => Sig::Reopen,
            _ = self.term.recv() => Sig::Stop,
            _ = self.int.recv() => Sig::Stop,
            _ = self.quit.recv() => Sig::Stop,
        }
    }
}
