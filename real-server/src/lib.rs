//! One CAHAT chat room served over WebSockets (axum), with durable storage.
//!
//! The room's rules all live in `protocol::Room`; this crate only drives it: it accepts
//! sockets, feeds the engine, delivers its effects and stores what it asks.
//!
//! # Layout
//! - [`config`]: flags and environment.
//! - [`app`]: the HTTP routes (`/` WebSocket or client page, `/healthz`, `/metrics`) and
//!   [`run`], the server's lifecycle with shutdown as a parameter.
//! - [`driver`]: the task that owns the room engine: inputs in, effects carried out, group
//!   commit to storage, slow clients closed.
//! - [`cluster`]: `--nats-url`: the room's log is a JetStream stream its nodes share.
//! - [`admission`]: places for connections, in all and per address, held by each socket.
//! - [`connection`]: one client's reader and writer halves.
//! - [`static_files`]: `--client-dir`, regular files inside the directory only.
//! - [`store`]: the `Store` trait with its SQLite (default) and MongoDB drivers.
//! - [`tls`]: the `wss://` listener.
//! - [`metrics`]: Prometheus counters.
//! - [`proxy`]: the PROXY protocol header a load balancer names each client's address in.
//! - [`sealing`]: the data keys, and what people wrote sealed at rest (`store::Sealed`).

pub mod admission;
pub mod app;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod driver;
pub mod metrics;
pub mod proxy;
pub mod roles;
pub mod sealing;
pub mod static_files;
pub mod store;
pub mod tls;

pub use app::run;
pub use config::Config;
pub use store::{MongoStore, SqliteStore, Store};
