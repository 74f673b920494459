//! Render time per byte stays bounded: every known pathological markdown shape (the seeds of
//! the markdown fuzz target, `fuzz/seeds/markdown/`) renders within a fixed multiple of plain
//! text's time per byte, measured side by side in this one run. A shape that is quadratic
//! (as trimming `http://a` followed by 4,000 `)` once was: 27 ms) is hundreds of times over.

use std::path::Path;
use std::time::{Duration, Instant};

use protocol::Renderer;

/// How many times plain text's cost per byte a shape may take. Linear shapes that nest (a
/// table, 1,000 quotes) do several times the work of prose per byte; quadratic ones at 4,000
/// bytes are far beyond this.
const MAX_RATIO: f64 = 60.0;

/// The fastest of several renders: the least disturbed by the rest of the machine.
fn best_time(renderer: &Renderer, text: &str) -> Duration {
    (0..7)
        .map(|_| {
            let started = Instant::now();
            let html = renderer.render(text);
            let elapsed = started.elapsed();
            assert!(!html.is_empty() || text.trim().is_empty());
            elapsed
        })
        .min()
        .unwrap_or_default()
}

#[test]
fn pathological_markdown_renders_in_time_linear_in_its_size() {
    let renderer = Renderer::new();
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/markdown");
    let mut shapes: Vec<(String, String)> = std::fs::read_dir(&seeds)
        .expect("the fuzz seeds are in the repository")
        .map(|entry| {
            let path = entry.expect("directory entry").path();
            let name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
            let text = std::fs::read_to_string(&path).expect("a seed is text");
            (name.unwrap_or_default(), text)
        })
        .collect();
    shapes.sort();
    assert!(
        shapes.len() >= 20,
        "the seed corpus is there: {}",
        shapes.len()
    );

    let plain: String = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. "
        .chars()
        .cycle()
        .take(4000)
        .collect();
    let plain_per_byte = best_time(&renderer, &plain).as_secs_f64() / plain.len() as f64;
    let mut worst = (0.0f64, String::new());
    for (name, text) in &shapes {
        let per_byte = best_time(&renderer, text).as_secs_f64() / text.len().max(1) as f64;
        let ratio = per_byte / plain_per_byte;
        println!(
            "{name:>24}: {:>5} bytes, {ratio:>6.1}x plain text per byte",
            text.len()
        );
        if ratio > worst.0 {
            worst = (ratio, name.clone());
        }
    }
    println!("worst: {} at {:.1}x (limit {MAX_RATIO}x)", worst.1, worst.0);
    assert!(
        worst.0 <= MAX_RATIO,
        "{} renders {:.1}x slower per byte than plain text",
        worst.1,
        worst.0
    );
}
