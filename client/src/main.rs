//! CAHAT's web client (Dioxus, compiled to WASM by trunk).
//!
//! For now this is the application shell: it renders the page frame and shows the markdown
//! renderer from `protocol` working in the browser. Rooms, transports and the mock backend
//! arrive with their own issues.

use dioxus::prelude::*;

fn main() {
    dioxus::launch(App);
}

#[component]
fn App() -> Element {
    let renderer = use_hook(|| std::rc::Rc::new(protocol::Renderer::new()));
    let preview = renderer.render("Welcome to **CAHAT** :wave:");
    rsx! {
        header { class: "topbar",
            h1 { "CAHAT" }
        }
        main { class: "shell",
            section { "aria-label": "Welcome",
                // HTML rendered and sanitised by our own renderer, never a server's.
                div { class: "message-body", dangerous_inner_html: "{preview}" }
                p { class: "status", role: "status",
                    "No rooms yet: connecting to room servers is not implemented in this build."
                }
            }
        }
    }
}
