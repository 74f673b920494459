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

use pulldown_cmark::{CowStr, Event, LinkType, Options, Parser, Tag, TagEnd};

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
        // First pass: raw HTML becomes text, images become links, and neighbouring texts join
        // (the parser splits text at characters that might have been markup, like `_`).
        // Texts are gathered in one buffer and joined once, so a message the parser cuts into
        // thousands of pieces costs linear time, not a copy of all before per piece.
        let mut events: Vec<Event<'_>> = Vec::new();
        let mut text: Option<String> = None;
        for event in parser {
            let event = match event {
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
                // In a chat a new line is a new line, not a space as in a document.
                Event::SoftBreak => Event::HardBreak,
                other => other,
            };
            match event {
                Event::Text(piece) => text.get_or_insert_with(String::new).push_str(&piece),
                event => {
                    if let Some(joined) = text.take() {
                        events.push(Event::Text(CowStr::from(joined)));
                    }
                    events.push(event);
                }
            }
        }
        if let Some(joined) = text.take() {
            events.push(Event::Text(CowStr::from(joined)));
        }
        // Second pass: emoji and bare links in text, but not in code, and no link in a link.
        let mut in_code = false;
        let mut in_link = 0u32;
        let events = events.into_iter().flat_map(|event| {
            match &event {
                Event::Start(Tag::CodeBlock(_)) => in_code = true,
                Event::End(TagEnd::CodeBlock) => in_code = false,
                Event::Start(Tag::Link { .. }) => in_link += 1,
                Event::End(TagEnd::Link) => in_link = in_link.saturating_sub(1),
                _ => {}
            }
            match event {
                Event::Text(text) if !in_code && in_link == 0 => linkify(text),
                Event::Text(text) if !in_code => vec![Event::Text(replace_shortcodes(text))],
                other => vec![other],
            }
        });
        let mut html = String::with_capacity(raw.len() + raw.len() / 2 + 16);
        pulldown_cmark::html::push_html(&mut html, events);
        sanitize::clean(&html)
    }
}

impl Renderer {
    /// The message as a person reads it, on one line: emoji shortcodes as emoji, markup
    /// dropped (emphasis, code fences, quote marks, list bullets, link targets), what is
    /// written kept (a link's text, an image's description, code's text, raw HTML as typed),
    /// blocks and lines joined by one space. What quotes, the reply bar, search results and
    /// notifications show.
    pub fn plain_text(&self, raw: &str) -> String {
        let mut out = String::with_capacity(raw.len());
        let mut in_code_block = false;
        let space = |out: &mut String| {
            if !out.is_empty() && !out.ends_with(' ') {
                out.push(' ');
            }
        };
        for event in Parser::new_ext(raw, self.options) {
            match event {
                Event::Text(text) if in_code_block => {
                    for line in text.lines() {
                        space(&mut out);
                        out.push_str(line.trim());
                    }
                }
                Event::Text(text) => out.push_str(&replace_shortcodes(text)),
                Event::Code(text) | Event::Html(text) | Event::InlineHtml(text) => {
                    out.push_str(&text);
                }
                Event::Start(Tag::CodeBlock(_)) => {
                    in_code_block = true;
                    space(&mut out);
                }
                Event::End(TagEnd::CodeBlock) => {
                    in_code_block = false;
                    space(&mut out);
                }
                Event::SoftBreak
                | Event::HardBreak
                | Event::Rule
                | Event::End(
                    TagEnd::Paragraph
                    | TagEnd::Heading(_)
                    | TagEnd::Item
                    | TagEnd::TableCell
                    | TagEnd::BlockQuote(_),
                ) => space(&mut out),
                _ => {}
            }
        }
        // One line: runs of white space (from the text itself too) are one space.
        out.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// Text with bare `http://` and `https://` addresses made into links (people paste them
/// without markdown and expect them to work), and shortcodes into emoji around them.
fn linkify(text: CowStr<'_>) -> Vec<Event<'_>> {
    if !text.contains("http") {
        return vec![Event::Text(replace_shortcodes(text))];
    }
    let mut events = Vec::new();
    let mut rest: &str = &text;
    while let Some((start, end)) = find_url(rest) {
        if start > 0 {
            let before = CowStr::from(rest[..start].to_owned());
            events.push(Event::Text(replace_shortcodes(before)));
        }
        let url = &rest[start..end];
        events.push(Event::Start(Tag::Link {
            link_type: LinkType::Autolink,
            dest_url: CowStr::from(url.to_owned()),
            title: CowStr::Borrowed(""),
            id: CowStr::Borrowed(""),
        }));
        events.push(Event::Text(CowStr::from(url.to_owned())));
        events.push(Event::End(TagEnd::Link));
        rest = &rest[end..];
    }
    if !rest.is_empty() || events.is_empty() {
        events.push(Event::Text(replace_shortcodes(CowStr::from(
            rest.to_owned(),
        ))));
    }
    events
}

/// The first bare URL in `text`: where it starts and ends. It starts a word, runs to white
/// space or a character that cannot be in one, and leaves out trailing punctuation (and a
/// closing parenthesis it did not open).
fn find_url(text: &str) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(found) = text[from..].find("http") {
        let start = from + found;
        from = start + 4;
        let after_word_break = text[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric());
        let scheme = ["https://", "http://"]
            .into_iter()
            .find(|s| text[start..].starts_with(s));
        let (true, Some(scheme)) = (after_word_break, scheme) else {
            continue;
        };
        let body = &text[start + scheme.len()..];
        let mut len = body
            .find(|c: char| {
                c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | '`')
            })
            .unwrap_or(body.len());
        // Trailing punctuation is trimmed, and a `)` only when the address has more `)` than
        // `(`. Both counts are taken once and kept up to date, so trimming is linear.
        let opens = body[..len].matches('(').count();
        let mut closes = body[..len].matches(')').count();
        while let Some(last) = body[..len].chars().next_back() {
            let unbalanced = last == ')' && opens < closes;
            if !(matches!(last, '.' | ',' | ';' | ':' | '!' | '?' | '\'' | ']' | '}') || unbalanced)
            {
                break;
            }
            if last == ')' {
                closes -= 1;
            }
            len -= last.len_utf8();
        }
        if len > 0 {
            return Some((start, start + scheme.len() + len));
        }
    }
    None
}

/// Renders with the default [`Renderer`].
/// Every emoji the renderer knows, as (shortcode, emoji), by shortcode: what a picker offers.
pub fn emoji_table() -> &'static [(&'static str, &'static str)] {
    emoji::SHORTCODES
}

/// The shortcode of an emoji of our table (`"👍"` → `"+1"`): only these can be reactions.
pub fn shortcode_of(emoji: &str) -> Option<&'static str> {
    emoji::SHORTCODES
        .iter()
        .find(|(_, e)| *e == emoji)
        .map(|(name, _)| *name)
}

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
    fn plain_text_is_what_a_person_reads_on_one_line() {
        let plain = |raw: &str| Renderer::new().plain_text(raw);
        assert_eq!(
            plain("**General** is _open_ :rocket:"),
            "General is open 🚀"
        );
        assert_eq!(
            plain("```rust\nfn main() {}\n```\nafter"),
            "fn main() {} after"
        );
        assert_eq!(plain("> quoted\n\n- one\n- two"), "quoted one two");
        assert_eq!(
            plain("see [the docs](https://example.org) and `x > 1`"),
            "see the docs and x > 1"
        );
        assert_eq!(plain("a <b>tag</b> as typed"), "a <b>tag</b> as typed");
        assert_eq!(plain("line one\nline two"), "line one line two");
        assert_eq!(plain("# Title\ntext"), "Title text");
        assert_eq!(plain("   "), "");
    }

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
    fn bare_addresses_become_links_but_not_in_code_or_links() {
        let link = |url: &str| {
            format!(
                "<a href=\"{url}\" rel=\"noopener noreferrer nofollow\" target=\"_blank\">{url}</a>"
            )
        };
        assert_eq!(
            render_markdown("see https://example.com/a?b=1&c=2. ok :+1:"),
            format!(
                "<p>see {}. ok 👍</p>\n",
                link("https://example.com/a?b=1&amp;c=2")
            )
        );
        assert_eq!(
            render_markdown("(docs: http://docs.rs/x_(y))"),
            format!("<p>(docs: {})</p>\n", link("http://docs.rs/x_(y)"))
        );
        assert_eq!(
            render_markdown("`https://in.code` and\n```\nhttps://in.block\n```"),
            "<p><code>https://in.code</code> and</p>\n<pre><code>https://in.block\n</code></pre>\n"
        );
        let once = render_markdown("[site](https://a.example) https://b.example");
        assert_eq!(once.matches("<a ").count(), 2, "{once}");
        assert!(once.contains(">site</a>"), "{once}");
        for not_a_link in [
            "nothttps://x.y",
            "https://",
            "javascript:alert(1)",
            "ftp://x.y",
        ] {
            let html = render_markdown(not_a_link);
            assert!(!html.contains("<a "), "{not_a_link}: {html}");
        }
        let quoted = render_markdown("https://x.example/\"onmouseover=\"alert(1)");
        // The address ends at the quote; the rest stays text, outside the tag.
        assert!(
            quoted.starts_with(&format!("<p>{}", link("https://x.example/"))),
            "{quoted}"
        );
    }

    #[test]
    fn a_new_line_is_a_line_break_and_blocks_still_work() {
        assert_eq!(
            render_markdown("Shopping list:\nmilk\neggs"),
            "<p>Shopping list:<br />\nmilk<br />\neggs</p>\n"
        );
        assert_eq!(
            render_markdown("- a\n- b\n\n```\nx\ny\n```"),
            "<ul>\n<li>a</li>\n<li>b</li>\n</ul>\n<pre><code>x\ny\n</code></pre>\n"
        );
        assert_eq!(
            render_markdown("> one\n> two"),
            "<blockquote>\n<p>one<br />\ntwo</p>\n</blockquote>\n"
        );
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
