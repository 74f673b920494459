//! `real-server`: one CAHAT chat room. `real-server --help` lists the flags.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser as _;
use real_server::config::Command;
use real_server::sealing::DataKeys;
use real_server::store::{Delayed, Sealed};
use real_server::{Config, MongoStore, SqliteStore, Store, run, tls};
use tokio::net::TcpListener;
use tracing::info;

fn main() -> ExitCode {
    let config = Config::parse();
    // Logs go to stderr (stdout carries only the addresses, for people and scripts), in colour
    // only on a terminal.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // A log nobody reads any more (its pipe closed) is not worth a panic: the room runs on.
        .log_internal_errors(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("real-server: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("real-server: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    if let Some(Command::Keygen { out }) = &config.command {
        let keys = DataKeys::generate().context("making a data key")?;
        keys.write_new(out)
            .with_context(|| format!("writing the data key file {}", out.display()))?;
        println!(
            "wrote data key {} to {} (mode 0600): give it with --data-key-file, to every node of the room; keep a copy apart from the data",
            keys.sealing_id(),
            out.display()
        );
        return Ok(());
    }
    match config.mongodb_uri.clone() {
        Some(uri) => {
            let store = MongoStore::connect(&uri, &config.mongodb_db)
                .await
                .context("connecting to MongoDB")?;
            sealed(config, store).await
        }
        None => {
            let store = SqliteStore::open_dir_with(&config.data_dir, config.sqlite_sync)
                .with_context(|| format!("opening the store in {}", config.data_dir.display()))?;
            sealed(config, store).await
        }
    }
}

/// The store, with what people write sealed under the room's data key; the key commands.
async fn sealed<S: Store>(config: Config, store: S) -> anyhow::Result<()> {
    let store = Sealed::open(
        store,
        config.room_id(),
        config.data_key_file.as_deref(),
        &config.data_dir,
    )
    .await?;
    let key_file =
        real_server::store::key_file_path(config.data_key_file.as_deref(), &config.data_dir);
    match &config.command {
        Some(Command::RotateKey) => {
            let rotated = store.keys().rotated().context("making a data key")?;
            if let Some(check) = rotated
                .checks()
                .into_iter()
                .find(|c| c.id == rotated.sealing_id())
            {
                store.save_key_check(config.room_id(), check).await?;
            }
            rotated
                .replace_file(&key_file)
                .with_context(|| format!("writing the key file {}", key_file.display()))?;
            println!(
                "key {} seals from now on (key file {}); restart the room's servers with this file: \
                 they seal anew in the background what key {} sealed; then `real-server retire-keys`",
                rotated.sealing_id(),
                key_file.display(),
                store.keys().sealing_id()
            );
            Ok(())
        }
        Some(Command::RetireKeys) => {
            let counts = store.count_by_key(config.room_id()).await?;
            let mut keys = store.keys().clone();
            for id in store
                .keys()
                .ids()
                .filter(|id| *id != store.keys().sealing_id())
            {
                match counts.get(id).copied().unwrap_or(0) {
                    0 => {
                        keys = keys.without(id);
                        store.remove_key_check(config.room_id(), id).await?;
                        println!("key {id} sealed nothing any more: retired");
                    }
                    n => println!(
                        "key {id} still seals {n} records: start the room's server, which seals them \
                         anew with key {} in the background, then retire again",
                        store.keys().sealing_id()
                    ),
                }
            }
            if let Some(n) = counts.get(real_server::store::PLAIN) {
                println!(
                    "{n} records are not sealed yet: the room's server seals them when it starts"
                );
            }
            keys.replace_file(&key_file)
                .with_context(|| format!("writing the key file {}", key_file.display()))?;
            Ok(())
        }
        None => {
            // What is not sealed with the sealing key (plain, or an older key's) is sealed
            // anew beside the room.
            tokio::spawn(
                store
                    .clone()
                    .reseal_in_background(config.room_id().to_owned()),
            );
            task(config, store).await
        }
        _ => task(config, store).await,
    }
}

/// Serves the room, or carries out the command given instead.
async fn task<S: Store>(config: Config, store: S) -> anyhow::Result<()> {
    match &config.command {
        None => listen(config, store).await,
        Some(Command::Role { action }) => {
            let said = real_server::roles::run(&store, config.room_id(), action).await?;
            println!("{said}");
            Ok(())
        }
        Some(Command::Keygen { .. } | Command::RotateKey | Command::RetireKeys) => Ok(()),
    }
}

async fn listen<S: Store>(config: Config, store: S) -> anyhow::Result<()> {
    let store = Delayed::new(store, Duration::from_millis(config.store_delay_ms));
    let listener = listen_on(
        SocketAddr::new(config.bind, config.port),
        config.listen_backlog,
    )
    .with_context(|| format!("listening on {}:{}", config.bind, config.port))?;
    let addr = listener.local_addr()?;
    // Listening for the stop signals before anyone is told where the room is.
    let shutdown = shutdown_signal();
    let backend = if config.mongodb_uri.is_some() {
        "MongoDB"
    } else {
        "embedded SQLite"
    };
    match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            let tls = tls::server_config(cert, key)?;
            info!(%addr, room = %config.name, backend, "listening on wss://{addr}/");
            announce(&format!("CAHAT room \"{}\" at wss://{addr}/", config.name));
            run(
                tls::TlsListener::new(listener, tls)?,
                config,
                store,
                shutdown,
            )
            .await
        }
        _ => {
            info!(%addr, room = %config.name, backend, "listening on ws://{addr}/");
            announce(&format!("CAHAT room \"{}\" at ws://{addr}/", config.name));
            if config.client_dir.is_some() {
                // The link opens the client with this room in it.
                announce(&format!("CAHAT client at http://{addr}/?room=ws://{addr}/"));
            }
            run(listener, config, store, shutdown).await
        }
    }
}

/// Tells whoever started the server where it listens, on standard output. Whoever reads it may
/// have stopped reading (a script that took the first line, a closed pipe): the room keeps
/// running, never panics over it.
fn announce(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// Completes on Ctrl-C or SIGTERM. The signals are listened for from the moment this is
/// called, before the address is announced: a supervisor (or a test) that stops the server
/// as soon as it has said where it listens still gets the graceful stop, storage flushed (it
/// was killed by the signal's default action now and then, when the handler was set up only on
/// the future's first poll).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let (term, interrupt) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |signal: Option<tokio::signal::unix::Signal>| async move {
                match signal {
                    Some(mut signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(term) => {}
                () = wait(interrupt) => {}
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        info!("shutting down");
    }
}

/// A listening socket on `addr` whose accept queue holds `backlog` connections (std's and
/// tokio's `bind` hold 128: a join storm overflows it, and each dropped SYN costs its client a
/// second).
fn listen_on(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As std's bind does on Unix: a restarted server binds again at once.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}
