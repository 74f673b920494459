//! The HTTP surface and the server's lifecycle: `run(listener, config, store, shutdown)`.
//!
//! Connections are admitted at the door ([`Admission`]): each accepted socket holds a place
//! for as long as it lives, its HTTP request head must arrive within `--header-timeout-seconds`,
//! and a socket over a limit is answered 503 and closed. Every connection task holds a drain
//! token; `run` returns when the room has flushed storage and every connection task has ended
//! (or after a grace period).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use protocol::{Room, RoomSnapshot};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc, watch};
use tower_service::Service as _;
use tracing::{debug, info, warn};

use crate::admission::{Admission, Admitted, Refused};
use crate::config::{Config, MetricsBind};
use crate::connection::{self, ConnectionContext};
use crate::driver::Driver;
use crate::metrics::Metrics;
use crate::proxy;
use crate::static_files::ClientDir;
use crate::store::Store;

/// Read buffer per connection. tungstenite's default is 128 KiB, far too much for thousands of
/// mostly idle connections; client frames are small, and larger ones are still read, in
/// several reads.
const READ_BUFFER_BYTES: usize = 2 * 1024;
/// Bytes gathered before a write reaches the socket (a flush always writes everything).
const WRITE_BUFFER_BYTES: usize = 16 * 1024;
/// Refusals (503 answers) being written at once; beyond this a refused socket is just closed
/// (counted in `cahat_unanswered_refusals_total`). A burst that the listen backlog releases at
/// once can put a thousand refusals in flight before their tasks run; each costs a socket and
/// a few KiB for at most two seconds, so this many stay cheap.
const MAX_REFUSALS_IN_FLIGHT: usize = 1024;
/// How long `run` waits for connection tasks to send their close frames at shutdown.
const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// The peer's address, put into every request by the accept loop.
#[derive(Debug, Clone, Copy)]
struct Peer(SocketAddr);

/// State shared by the HTTP handlers.
#[derive(Debug)]
struct AppState {
    config: Config,
    connections: Arc<ConnectionContext>,
    metrics: Arc<Metrics>,
    /// The built client's index.html and directory, when --client-dir is set.
    client: Option<(String, ClientDir)>,
    /// Held by every connection task; `run` waits until all are dropped.
    drain: mpsc::Sender<()>,
    /// A cluster node's health (`--nats-url`), for `/healthz`.
    cluster: Option<crate::cluster::Health>,
}

/// Serves one room on `listener` until `shutdown` completes, then closes every connection
/// with 1001 and flushes storage before returning.
pub async fn run<L, S>(
    mut listener: L,
    config: Config,
    store: S,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()>
where
    L: axum::serve::Listener<Addr = SocketAddr>,
    L::Io: Unpin,
    S: Store,
{
    let room_config = config.room_config();
    let snapshot: RoomSnapshot = store
        .load_snapshot(config.room_id(), room_config.cache_messages)
        .await
        .context("loading the room from storage")?;
    info!(
        room = config.room_id(),
        messages = snapshot.messages.len(),
        users = snapshot.users.len(),
        latest_seq = snapshot.latest_seq,
        "room loaded"
    );
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    let room = Room::new(room_config, snapshot, seed);
    let shared_log = match &config.nats_url {
        Some(url) => {
            let settings = crate::cluster::StreamSettings {
                replicas: config.stream_replicas.max(1),
                max_age: Duration::from_secs(config.stream_max_age_hours.saturating_mul(3600)),
                max_bytes: config.stream_max_bytes,
                duplicate_window: Duration::from_secs(
                    config.stream_duplicate_window_seconds.max(1),
                ),
            };
            Some(
                crate::cluster::connect(url, config.room_id(), room.latest_seq(), &settings)
                    .await?,
            )
        }
        None => None,
    };

    let metrics = Arc::new(Metrics::default());
    let (inputs_tx, inputs_rx) = mpsc::channel(4096);
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        stop_tx.send_replace(true);
    });

    let driver = Driver::new(
        room,
        config.room_id(),
        Arc::new(store),
        Arc::clone(&metrics),
    )
    .with_search_timeout(Duration::from_millis(config.search_timeout_ms.max(1)))
    .with_write_delay(config.write_delay());
    let cluster = shared_log.as_ref().map(|(log, _)| log.health());
    let driver = match shared_log {
        Some((log, logged)) => driver.with_shared_log(log, logged),
        None => driver,
    };
    let driver = tokio::spawn(driver.run(inputs_rx, stopped(stop_rx.clone())));

    let client = match &config.client_dir {
        Some(dir) => {
            let index = tokio::fs::read_to_string(dir.join("index.html"))
                .await
                .with_context(|| format!("reading {}/index.html", dir.display()))?;
            let files = ClientDir::open(dir)
                .with_context(|| format!("opening the client directory {}", dir.display()))?;
            Some((index, files))
        }
        None => None,
    };
    let (drain, mut drained) = mpsc::channel::<()>(1);
    let state = Arc::new(AppState {
        connections: Arc::new(ConnectionContext {
            inputs: inputs_tx,
            metrics: Arc::clone(&metrics),
            queue_frames: config.queue_frames,
            queue_bytes: config.queue_bytes,
            frame_burst: config.frame_burst,
            frames_per_second: config.frames_per_second,
            ping_interval: config.ping_interval(),
            idle_timeout: config.idle_timeout(),
            next_id: AtomicU64::new(1),
        }),
        metrics: Arc::clone(&metrics),
        client,
        drain,
        config,
        cluster,
    });
    let mut routes = Router::new()
        .route("/", get(root))
        .route("/healthz", get(healthz));
    if state.client.is_some() {
        routes = routes.fallback(client_file);
    }
    match state.config.metrics_bind {
        MetricsBind::Off => {}
        MetricsBind::Main => routes = routes.route("/metrics", get(metrics_text)),
        MetricsBind::Addr(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening for /metrics on {addr}"))?;
            info!(%addr, "metrics on http://{addr}/metrics");
            let metrics_router = Router::new()
                .route("/metrics", get(metrics_text))
                .with_state(Arc::clone(&state));
            let stop = stopped(stop_rx.clone());
            tokio::spawn(async move {
                if let Err(err) = axum::serve(listener, metrics_router)
                    .with_graceful_shutdown(stop)
                    .await
                {
                    warn!(error = %err, "metrics listener failed");
                }
            });
        }
    }
    let router = routes.with_state(Arc::clone(&state));

    let door = Door {
        admission: Admission::new(
            state.config.max_connections,
            state.config.max_connections_per_address,
        ),
        refusals: Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT)),
        metrics: Arc::clone(&metrics),
        router: router.clone(),
        header_timeout: state.config.header_timeout(),
        stop: stop_rx.clone(),
        drain: state.drain.clone(),
    };
    let mut stop = stop_rx.clone();
    loop {
        let (mut io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stop| *stop) => break,
        };
        if !state.config.proxy_protocol_from.contains(&peer.ip()) {
            door.enter(io, peer);
            continue;
        }
        // The load balancer: its PROXY header names the client, read in a task of its own so
        // that a slow one never holds the door.
        let door = door.clone();
        tokio::spawn(async move {
            let header = tokio::time::timeout(door.header_timeout, proxy::read_header(&mut io));
            match header.await {
                Ok(Ok(client)) => door.enter(io, client.unwrap_or(peer)),
                Ok(Err(error)) => debug!(%peer, %error, "closed"),
                Err(_) => debug!(%peer, "no PROXY header in time: closed"),
            }
        });
    }
    drop(door);
    drop(listener);
    // The driver closes every WebSocket with 1001 and flushes storage.
    driver.await.context("room driver")?;
    // Then every connection task sends its close frame and ends.
    drop(state);
    drop(router);
    if tokio::time::timeout(DRAIN_GRACE, drained.recv())
        .await
        .is_err()
    {
        warn!("some connections did not close in time");
    }
    Ok(())
}

/// What every accepted connection goes through: a place at the door (or a 503), then HTTP.
#[derive(Clone)]
struct Door {
    admission: Arc<Admission>,
    refusals: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    router: Router,
    header_timeout: Duration,
    stop: watch::Receiver<bool>,
    drain: mpsc::Sender<()>,
}

impl Door {
    /// Admits `io` from `peer` (the client, behind a balancer) and serves it, or answers 503.
    fn enter<Io>(&self, io: Io, peer: SocketAddr)
    where
        Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        match self.admission.admit(peer.ip()) {
            Ok(ticket) => {
                let io = Admitted::new(io, ticket);
                let connection = serve_http(
                    io,
                    peer,
                    self.router.clone(),
                    self.header_timeout,
                    self.stop.clone(),
                );
                let token = self.drain.clone();
                tokio::spawn(async move {
                    connection.await;
                    drop(token);
                });
            }
            Err(refused) => {
                Metrics::add(&self.metrics.refused_connections, 1);
                debug!(%peer, ?refused, "connection refused at the door");
                if let Ok(slot) = Arc::clone(&self.refusals).try_acquire_owned() {
                    tokio::spawn(async move {
                        answer_503(io, refused).await;
                        drop(slot);
                    });
                } else {
                    Metrics::add(&self.metrics.unanswered_refusals, 1);
                }
            }
        }
    }
}

/// Completes when the stop flag is set (or its sender is gone, which also means stop).
async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// One admitted connection: HTTP/1.1 with a deadline for the request head, upgraded to a
/// WebSocket when asked; a graceful end when the server stops.
async fn serve_http<Io>(
    io: Io,
    peer: SocketAddr,
    router: Router,
    header_timeout: Duration,
    stop: watch::Receiver<bool>,
) where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(Peer(peer));
        let mut router = router.clone();
        async move { router.call(request.map(axum::body::Body::new)).await }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let connection = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(err) = result {
                debug!(%peer, error = %err, "HTTP connection ended");
            }
        }
        () = stopped(stop) => {
            connection.as_mut().graceful_shutdown();
            if let Err(err) = connection.await {
                debug!(%peer, error = %err, "HTTP connection ended during shutdown");
            }
        }
    }
}

/// Answers a refused socket with 503 and closes it. The start of its request is read first,
/// so that closing does not reset the connection before the client reads the answer.
async fn answer_503<Io: AsyncRead + AsyncWrite + Unpin>(mut io: Io, refused: Refused) {
    let body = refused.text();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nretry-after: 5\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = async {
        let mut request = [0u8; 4096];
        // Whatever arrives within a moment; the answer is the same either way.
        let _ = tokio::time::timeout(Duration::from_millis(500), io.read(&mut request)).await;
        io.write_all(response.as_bytes()).await?;
        io.shutdown().await
    };
    if let Ok(Err(err)) = tokio::time::timeout(Duration::from_secs(2), answer).await {
        debug!(error = %err, "could not answer a refused connection");
    }
}

/// `/`: the WebSocket endpoint (legacy clients connect to the bare host), or the client's
/// page for a plain browser visit when the client is served too.
async fn root(
    State(state): State<Arc<AppState>>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(_) => {
            return match &state.client {
                // The page names the hashed assets of one build: always revalidated.
                Some((index, _)) => {
                    ([(header::CACHE_CONTROL, "no-cache")], Html(index.clone())).into_response()
                }
                None => (
                    StatusCode::UPGRADE_REQUIRED,
                    [(header::UPGRADE, "websocket")],
                    "This is a CAHAT room server: connect to it with a WebSocket client.\n",
                )
                    .into_response(),
            };
        }
    };
    let allowed = &state.config.allowed_origins;
    if !allowed.is_empty() {
        // Every Origin header must be allowed (a request with two is judged by both, not by
        // whichever comes first).
        let mut origins = headers.get_all(header::ORIGIN).iter().peekable();
        let has_origin = origins.peek().is_some();
        let all_allowed = origins.all(|origin| {
            let origin = origin.to_str().unwrap_or("");
            allowed.iter().any(|a| a == origin)
        });
        if has_origin && !all_allowed {
            warn!("WebSocket from an origin that is not allowed");
            return (StatusCode::FORBIDDEN, "origin not allowed\n").into_response();
        }
    }
    let max_frame = state.config.max_frame_bytes;
    // tungstenite's own write buffer: a client that does not read (pongs to a ping flood
    // included) can make it hold at most this much.
    let max_write_buffer = state
        .config
        .queue_bytes
        .saturating_add(2 * WRITE_BUFFER_BYTES);
    let ctx = Arc::clone(&state.connections);
    let token = state.drain.clone();
    let peer = peer.map(|axum::Extension(Peer(addr))| addr.ip());
    upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(max_write_buffer)
        .max_message_size(max_frame)
        .max_frame_size(max_frame)
        .on_upgrade(move |socket: WebSocket| async move {
            let (sink, stream) = socket.split();
            connection::serve(sink, stream, ctx, peer).await;
            drop(token);
        })
}

/// Any other GET, with `--client-dir`: a file of the built client.
async fn client_file(State(state): State<Arc<AppState>>, uri: Uri, headers: HeaderMap) -> Response {
    match &state.client {
        Some((_, files)) => files.serve(&uri, &headers).await,
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

/// 200 "ok" while this process can serve its room; 503 with the reason when a cluster node has
/// lost NATS or its room's stream (a load balancer then sends new people to other nodes).
async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    match state
        .cluster
        .as_ref()
        .and_then(crate::cluster::Health::problem)
    {
        Some(problem) => (StatusCode::SERVICE_UNAVAILABLE, format!("{problem}\n")).into_response(),
        None => "ok\n".into_response(),
    }
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
