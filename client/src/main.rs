//! CAHAT's web client (Dioxus, compiled to WASM by trunk).
//!
//! One page holds many rooms, each on its own room server (or simulated in the page).
//!
//! # Layout
//! - `state`: the whole client state and its reducer (pure; unit-tested natively).
//! - `address`: room addresses as typed (`ws://`, `wss://`, `mock://`).
//! - `transport`: the [`transport::Transport`] trait, over a WebSocket or a mock room.
//! - `network`: the one loop that owns every connection, reconnects and resumes.
//! - `storage`: what survives a reload (localStorage).
//! - `format`: times and dates for people.
//! - `ui`: the components; they read the state and send the network intents.

mod address;
mod call;
mod format;
mod network;
mod state;
mod storage;
mod transport;
mod ui;

fn main() {
    dioxus::launch(ui::App);
}
