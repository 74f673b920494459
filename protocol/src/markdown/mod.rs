//! Markdown to safe HTML: the one renderer used by the server (for the legacy `htmlMessage`)
//! and by our client (which renders `rawMessage` itself and never trusts a server's HTML).
//!
//! Two layers, so that one mistake is not enough for an attack:
//! 1. While rendering, raw HTML in the markdown is turned into text (it shows as typed),
//!    images become plain links (no remote images: they would leak readers' addresses), and
//!    emoji shortcodes (`:+1:`) become emoji (the common part of GitHub's set, see `emoji`).
//! 2. After rendering, the HTML goes through [`sanitize::clean`], a strict allow-list:
//!    formatting tags only, links only to `http`, `https` and `mailto`, each with
//!    `rel="noopener noreferrer nofollow"`, and no attribute that can run code.

mod emoji;
pub mod sanitize;

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};

/// Renders markdown to sanitised HTML. Cheap to build; holds the parser options.
#[derive(Debug, Clone, Copy)]
pub struct Renderer {
    options: Options,
}

impl Default for Renderer {
    fn default() -> Self {
        Self::new()
    }
}

impl Renderer {
    /// A renderer with our markdown dialect: CommonMark plus strikethrough and tables.
    pub fn new() -> Self {
        Self {
            options: Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES,
        }
    }

    /// Markdown in, HTML that is safe to inject into a page out.
    pub fn render(&self, raw: &str) -> String {
        let parser = Parser::new_ext(raw, self.options);
        let mut in_code = false;
        let events = parser.map(|event| match event {
            Event::Html(html) | Event::InlineHtml(html) => Event::Text(html),
            Event::Start(Tag::HtmlBlock) => Event::Start(Tag::Paragraph),
            Event::End(TagEnd::HtmlBlock) => Event::End(TagEnd::Paragraph),
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            }) => Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }),
            Event::End(TagEnd::Image) => Event::End(TagEnd::Link),
            Event::Start(Tag::CodeBlock(kind)) => {
                in_code = true;
                Event::Start(Tag::CodeBlock(kind))
            }
            Event::End(TagEnd::CodeBlock) => {
                in_code = false;
                Event::End(TagEnd::CodeBlock)
            }
            Event::Text(text) if !in_code => Event::Text(replace_shortcodes(text)),
            other => other,
        });
        let mut html = String::with_capacity(raw.len() + raw.len() / 2 + 16);
        pulldown_cmark::html::push_html(&mut html, events);
        sanitize::clean(&html)
    }
}

/// Renders with the default [`Renderer`].
pub fn render_markdown(raw: &str) -> String {
    Renderer::new().render(raw)
}

/// Replaces `:shortcode:` with its emoji where the shortcode is known; leaves the rest alone.
fn replace_shortcodes(text: CowStr<'_>) -> CowStr<'_> {
    if !text.contains(':') {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest: &str = &text;
    let mut changed = false;
    while let Some(start) = rest.find(':') {
        let after = &rest[start + 1..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-')))
            .unwrap_or(after.len());
        let name = &after[..end];
        let closes = after[end..].starts_with(':');
        match (closes && !name.is_empty())
            .then(|| emoji::get(name))
            .flatten()
        {
            Some(emoji) => {
                out.push_str(&rest[..start]);
                out.push_str(emoji);
                rest = &after[end + 1..];
                changed = true;
            }
            None => {
                // Keep this colon; a shortcode may still start at the next one.
                out.push_str(&rest[..=start]);
                rest = after;
            }
        }
    }
    if !changed {
        return text;
    }
    out.push_str(rest);
    CowStr::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_common_markdown() {
        let r = Renderer::new();
        assert_eq!(
            r.render("**bold** and _it_"),
            "<p><strong>bold</strong> and <em>it</em></p>\n"
        );
        assert_eq!(
            r.render("- a\n- b"),
            "<ul>\n<li>a</li>\n<li>b</li>\n</ul>\n"
        );
        assert_eq!(r.render("`x<y`"), "<p><code>x&lt;y</code></p>\n");
        assert_eq!(r.render("~~gone~~"), "<p><del>gone</del></p>\n");
    }

    #[test]
    fn links_get_rel_and_keep_safe_schemes() {
        let html = render_markdown("[site](https://example.com/a?b=1)");
        assert_eq!(
            html,
            "<p><a href=\"https://example.com/a?b=1\" rel=\"noopener noreferrer nofollow\" target=\"_blank\">site</a></p>\n"
        );
        let mail = render_markdown("[me](mailto:me@example.com)");
        assert!(mail.contains("href=\"mailto:me@example.com\""), "{mail}");
    }

    #[test]
    fn images_become_links() {
        let html = render_markdown("![cat](https://example.com/cat.png)");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains(">cat</a>"), "{html}");
    }

    #[test]
    fn raw_html_shows_as_text() {
        assert_eq!(
            render_markdown("<b>hi</b>"),
            "<p>&lt;b&gt;hi&lt;/b&gt;</p>\n"
        );
    }

    #[test]
    fn shortcodes_become_emoji_outside_code() {
        assert_eq!(render_markdown("nice :+1: :tada:"), "<p>nice 👍 🎉</p>\n");
        assert_eq!(
            render_markdown("at 10:30:00 :nope:"),
            "<p>at 10:30:00 :nope:</p>\n"
        );
        assert_eq!(render_markdown("`:+1:`"), "<p><code>:+1:</code></p>\n");
        assert_eq!(
            render_markdown("```\n:+1:\n```"),
            "<pre><code>:+1:\n</code></pre>\n"
        );
    }
}
