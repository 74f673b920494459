//! The HTTP surface and the server's lifecycle: `run(listener, config, store, shutdown)`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use protocol::{Room, RoomSnapshot};
use tokio::sync::{mpsc, watch};
use tower_http::services::ServeDir;
use tracing::{info, warn};

use crate::config::Config;
use crate::connection::{self, ConnectionContext};
use crate::driver::Driver;
use crate::metrics::Metrics;
use crate::store::Store;

/// Read buffer per connection. tungstenite's default is 128 KiB, far too much for thousands of
/// mostly idle connections; client frames are small, and larger ones are still read, in
/// several reads.
const READ_BUFFER_BYTES: usize = 2 * 1024;
/// Bytes gathered before a write reaches the socket (a flush always writes everything).
const WRITE_BUFFER_BYTES: usize = 16 * 1024;

/// State shared by the HTTP handlers.
#[derive(Debug)]
struct AppState {
    config: Config,
    connections: Arc<ConnectionContext>,
    metrics: Arc<Metrics>,
    /// The built client's index.html, when --client-dir is set.
    client_index: Option<String>,
}

/// Serves one room on `listener` until `shutdown` completes, then closes every connection
/// with 1001 and flushes storage before returning.
pub async fn run<L, S>(
    listener: L,
    config: Config,
    store: S,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
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

    let metrics = Arc::new(Metrics::default());
    let (inputs_tx, inputs_rx) = mpsc::channel(4096);
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        // An error means the sender is gone, which also means stop.
        let _ = rx.wait_for(|stop| *stop).await;
    };
    tokio::spawn(async move {
        shutdown.await;
        stop_tx.send_replace(true);
    });

    let driver = Driver::new(
        room,
        config.room_id(),
        Arc::new(store),
        Arc::clone(&metrics),
    );
    let driver = tokio::spawn(driver.run(inputs_rx, stopped(stop_rx.clone())));

    let client_index = match &config.client_dir {
        Some(dir) => Some(
            tokio::fs::read_to_string(dir.join("index.html"))
                .await
                .with_context(|| format!("reading {}/index.html", dir.display()))?,
        ),
        None => None,
    };
    let state = Arc::new(AppState {
        connections: Arc::new(ConnectionContext {
            inputs: inputs_tx,
            metrics: Arc::clone(&metrics),
            queue_frames: config.queue_frames,
            ping_interval: config.ping_interval(),
            idle_timeout: config.idle_timeout(),
            next_id: AtomicU64::new(1),
        }),
        metrics: Arc::clone(&metrics),
        client_index,
        config,
    });
    let mut router = Router::new()
        .route("/", get(root))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics_text))
        .with_state(Arc::clone(&state));
    if let Some(dir) = &state.config.client_dir {
        router = router.fallback_service(ServeDir::new(dir));
    }

    axum::serve(listener, router)
        .with_graceful_shutdown(stopped(stop_rx))
        .await
        .context("serving HTTP")?;
    // The driver closes every WebSocket with 1001 and flushes storage.
    driver.await.context("room driver")?;
    // Let connection tasks send their close frames.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while metrics.connections.load(Ordering::Relaxed) > 0 && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// `/`: the WebSocket endpoint (legacy clients connect to the bare host), or the client's
/// page for a plain browser visit when the client is served too.
async fn root(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(_) => {
            return match &state.client_index {
                Some(index) => Html(index.clone()).into_response(),
                None => (
                    StatusCode::UPGRADE_REQUIRED,
                    [(header::UPGRADE, "websocket")],
                    "This is a CAHAT room server: connect to it with a WebSocket client.\n",
                )
                    .into_response(),
            };
        }
    };
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = &state.config.allowed_origins;
        let origin = origin.to_str().unwrap_or("");
        if !allowed.is_empty() && !allowed.iter().any(|a| a == origin) {
            warn!(origin, "WebSocket from an origin that is not allowed");
            return (StatusCode::FORBIDDEN, "origin not allowed\n").into_response();
        }
    }
    let open = usize::try_from(state.metrics.connections.load(Ordering::Relaxed)).unwrap_or(0);
    if open >= state.config.max_connections {
        return (StatusCode::SERVICE_UNAVAILABLE, "room is full\n").into_response();
    }
    let max_frame = state.config.max_frame_bytes;
    let ctx = Arc::clone(&state.connections);
    upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_message_size(max_frame)
        .max_frame_size(max_frame)
        .on_upgrade(move |socket: WebSocket| async move {
            let (sink, stream) = socket.split();
            connection::serve(sink, stream, ctx).await;
        })
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
