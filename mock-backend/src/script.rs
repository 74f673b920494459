//! What the fake users say and are called.

/// Fake users' names, in the order rooms take them.
pub const NAMES: &[&str] = &["Ada", "Linus", "Grace", "Ken", "Barbara", "Dennis"];

/// Suffixes for renames.
pub const SUFFIXES: &[&str] = &[" (away)", " 🦀", " [afk]", "_", " the Second"];

/// Messages in varied markdown: emphasis, lists, code, links (bare ones too), emoji, quotes,
/// tables.
pub const MESSAGES: &[&str] = &[
    "Good morning, everyone :wave:",
    "Has anyone tried the **new build**? It feels _much_ faster.",
    "Reminder:\n- stand-up at 10\n- demo at 3\n- cake at 4 :cake:",
    "`cargo test` passes on my machine :tada:",
    "Here is the fix:\n\n```rust\nfn main() {\n    println!(\"hello\");\n}\n```",
    "The docs are at [docs.rs](https://docs.rs) if you need them.",
    "> Premature optimisation is the root of all evil\n\nStill true.",
    "~~Meeting at noon~~ moved to 1pm",
    "1. write the test\n2. watch it fail\n3. make it pass",
    "| lang | speed |\n|---|---|\n| Rust | fast |\n| Python | fine |",
    "Lunch? :pizza: :+1:",
    "brb",
    "That was a *really* good talk.",
    "Shift+Enter makes a new line; Enter sends (or Ctrl+Enter, see Settings).",
    "I pushed a branch with the **fix**; reviews welcome :eyes:",
    "Release notes are up: https://blog.rust-lang.org/ :rocket:",
];

/// What a fake user's last message becomes when they edit it.
pub const EDITS: &[&str] = &[
    "*Typo fixed:* the demo is at **3 pm**, not 2.",
    "Edited: never mind, found it :sweat_smile:",
    "(edited) `cargo check` was enough, no need for a full build.",
];

/// What fake users react with.
pub const REACTIONS: &[&str] = &["👍", "🎉", "😂", "❤️", "👀"];

/// What fake users write to one person directly (to you too), and answer when written to.
pub const DIRECT: &[&str] = &[
    "Hi, just between us: how is your day going? :wave:",
    "Could you **review** my branch when you have a minute?",
    "Thanks for your message! I will look at it after lunch.",
    "Quick question: are you coming to the demo at 3?",
    "Sure, let us talk here :+1:",
];

/// What the demo's spammer posts now and then (and the demo's moderator removes).
pub const SPAM: &[&str] = &[
    "BUY CHEAP WATCHES at watches.example!!! :moneybag: :moneybag:",
    "Free crypto giveaway, click now: https://giveaway.example :rocket: :rocket: :rocket:",
    "Follow my channel for 1000 free followers!!! https://followers.example",
];
