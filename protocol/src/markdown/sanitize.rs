//! The post-render sanitiser: an allow-list pass over HTML that fails closed.
//!
//! It is written for the output of our renderer (pulldown-cmark's HTML writer), but is safe on
//! any input: text is kept as text, a `<` that does not open a well-formed tag is escaped, tags
//! and attributes that are not on the allow-list are dropped, links keep only `http`, `https`
//! and `mailto` targets, and the result is balanced. It is small on purpose: the client ships
//! it in a WASM bundle with a 250 KiB budget, where a full HTML5 parser would not fit. The
//! tests check it against ammonia as an oracle.

/// Tags that may appear in a rendered message.
pub const ALLOWED_TAGS: &[&str] = &[
    "p",
    "br",
    "strong",
    "em",
    "del",
    "code",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "li",
    "a",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
];

/// Tags without content or closing tag.
const VOID_TAGS: &[&str] = &["br", "hr"];

/// URL schemes a link may have. Relative links are dropped: a message has no base address.
pub const ALLOWED_SCHEMES: &[&str] = &["http", "https", "mailto"];

/// The `rel` every link gets.
pub const LINK_REL: &str = "noopener noreferrer nofollow";

/// Cleans `html` to the allow-list.
pub fn clean(html: &str) -> String {
    let mut out = String::with_capacity(html.len() + 32);
    let mut open: Vec<&'static str> = Vec::new();
    let mut rest = html;
    while !rest.is_empty() {
        let next = rest.find(['<', '&']).unwrap_or(rest.len());
        out.push_str(&rest[..next]);
        rest = &rest[next..];
        if rest.starts_with('&') {
            let len = entity_len(rest);
            if len > 0 {
                out.push_str(&rest[..len]);
                rest = &rest[len..];
            } else {
                out.push_str("&amp;");
                rest = &rest[1..];
            }
        } else if rest.starts_with('<') {
            match parse_tag(rest) {
                Some((tag, len)) => {
                    emit(&mut out, &mut open, tag);
                    rest = &rest[len..];
                }
                None => {
                    out.push_str("&lt;");
                    rest = &rest[1..];
                }
            }
        }
    }
    while let Some(name) = open.pop() {
        close(&mut out, name);
    }
    out
}

struct Tag<'a> {
    name: &'a str,
    closing: bool,
    attrs: Vec<(&'a str, &'a str)>,
}

fn emit(out: &mut String, open: &mut Vec<&'static str>, tag: Tag<'_>) {
    let Some(name) = ALLOWED_TAGS.iter().copied().find(|t| *t == tag.name) else {
        return;
    };
    if tag.closing {
        if let Some(depth) = open.iter().rposition(|t| *t == name) {
            while open.len() > depth {
                if let Some(inner) = open.pop() {
                    close(out, inner);
                }
            }
        }
        return;
    }
    out.push('<');
    out.push_str(name);
    for (attr, value) in tag.attrs {
        match (name, attr) {
            ("a", "href") => {
                if let Some(href) = safe_href(value) {
                    push_attr(out, "href", &href);
                }
            }
            ("a", "title") => {
                if let Some(title) = decode_entities(value) {
                    push_attr(out, "title", &title);
                }
            }
            ("ol", "start")
                if (1..=9).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit()) =>
            {
                push_attr(out, "start", value);
            }
            _ => {}
        }
    }
    if name == "a" {
        push_attr(out, "rel", LINK_REL);
        push_attr(out, "target", "_blank");
    }
    if VOID_TAGS.contains(&name) {
        out.push_str(" />");
    } else {
        out.push('>');
        open.push(name);
    }
}

fn close(out: &mut String, name: &str) {
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn push_attr(out: &mut String, name: &str, value: &str) {
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Parses `<name attr="value" ...>`, `<name />` or `</name>` at the start of `s`: lowercase
/// ASCII names, double-quoted values without `<`. Returns the tag and its length in bytes.
fn parse_tag(s: &str) -> Option<(Tag<'_>, usize)> {
    let bytes = s.as_bytes();
    let mut i = 1;
    let closing = bytes.get(i) == Some(&b'/');
    if closing {
        i += 1;
    }
    let name_start = i;
    while bytes
        .get(i)
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        i += 1;
    }
    if i == name_start {
        return None;
    }
    let name = &s[name_start..i];
    let mut attrs = Vec::new();
    loop {
        match bytes.get(i)? {
            b'>' => {
                return Some((
                    Tag {
                        name,
                        closing,
                        attrs,
                    },
                    i + 1,
                ));
            }
            b'/' if !closing && bytes.get(i + 1) == Some(&b'>') => {
                return Some((
                    Tag {
                        name,
                        closing,
                        attrs,
                    },
                    i + 2,
                ));
            }
            b' ' if !closing => {
                i += 1;
                if matches!(bytes.get(i), Some(b'/' | b'>')) {
                    continue;
                }
                let attr_start = i;
                while bytes
                    .get(i)
                    .is_some_and(|b| b.is_ascii_lowercase() || *b == b'-')
                {
                    i += 1;
                }
                if i == attr_start || bytes.get(i) != Some(&b'=') || bytes.get(i + 1) != Some(&b'"')
                {
                    return None;
                }
                let attr = &s[attr_start..i];
                let value_start = i + 2;
                let value_len = s[value_start..].find('"')?;
                let value = &s[value_start..value_start + value_len];
                if value.contains('<') {
                    return None;
                }
                attrs.push((attr, value));
                i = value_start + value_len + 1;
            }
            _ => return None,
        }
    }
}

/// Length of a well-formed character reference at the start of `s` (`&amp;`, `&#39;`,
/// `&#x1F600;`), or 0.
fn entity_len(s: &str) -> usize {
    let body = &s[1..];
    let end = match body.find(';') {
        Some(end) if end > 0 && end <= 32 => end,
        _ => return 0,
    };
    let name = &body[..end];
    let ok = if let Some(hex) = name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
        !hex.is_empty() && hex.len() <= 6 && hex.bytes().all(|b| b.is_ascii_hexdigit())
    } else if let Some(dec) = name.strip_prefix('#') {
        !dec.is_empty() && dec.len() <= 7 && dec.bytes().all(|b| b.is_ascii_digit())
    } else {
        name.bytes().all(|b| b.is_ascii_alphanumeric())
    };
    if ok { end + 2 } else { 0 }
}

/// Decodes the character references an HTML writer puts in attribute values. `None` when the
/// value holds a reference we do not decode: the attribute is then dropped, not guessed at.
fn decode_entities(value: &str) -> Option<String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let end = rest.find(';')?;
        let name = &rest[1..end];
        let c = match name {
            "amp" => '&',
            "quot" => '"',
            "lt" => '<',
            "gt" => '>',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) =
                    name.strip_prefix("#x").or_else(|| name.strip_prefix("#X"))
                {
                    u32::from_str_radix(hex, 16).ok()?
                } else {
                    name.strip_prefix('#')?.parse::<u32>().ok()?
                };
                char::from_u32(code)?
            }
        };
        out.push(c);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// The decoded link target if its scheme is allowed. Browsers ignore ASCII tabs and newlines
/// inside a URL and leading controls and spaces, so those are removed before looking.
fn safe_href(value: &str) -> Option<String> {
    let decoded = decode_entities(value)?;
    let url: String = decoded
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let url = url.trim_matches(|c: char| c.is_control() || c == ' ');
    if url.chars().any(char::is_control) {
        return None;
    }
    let colon = url.find(':')?;
    let scheme = &url[..colon];
    if scheme.contains(['/', '?', '#']) {
        return None;
    }
    let scheme = scheme.to_ascii_lowercase();
    ALLOWED_SCHEMES
        .contains(&scheme.as_str())
        .then(|| url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_allowed_markup() {
        let html = "<p>a <strong>b</strong> <em>c</em> <code>d &lt; e</code></p>\n<ul>\n<li>x</li>\n</ul>\n<hr />\n";
        assert_eq!(clean(html), html);
        assert_eq!(
            clean("<ol start=\"3\"><li>x</li></ol>"),
            "<ol start=\"3\"><li>x</li></ol>"
        );
    }

    #[test]
    fn links_keep_safe_schemes_and_get_rel() {
        assert_eq!(
            clean("<a href=\"https://x.example/?a=1&amp;b=2\" title=\"t\">x</a>"),
            "<a href=\"https://x.example/?a=1&amp;b=2\" title=\"t\" rel=\"noopener noreferrer nofollow\" target=\"_blank\">x</a>"
        );
        for bad in [
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "java&#x09;script:alert(1)",
            "&#106;avascript:alert(1)",
            " javascript:alert(1)",
            "data:text/html,x",
            "vbscript:x",
            "/relative",
            "//host/path",
            "java\u{0}script:x",
            "&unknown;javascript:x",
        ] {
            let html = clean(&format!("<a href=\"{bad}\">x</a>"));
            assert!(!html.contains("href"), "{bad:?} -> {html}");
        }
    }

    #[test]
    fn drops_unknown_tags_and_attributes() {
        assert_eq!(clean("<script>alert(1)</script>"), "alert(1)");
        assert_eq!(clean("<p onclick=\"x()\" style=\"a\">t</p>"), "<p>t</p>");
        assert_eq!(clean("<img src=\"x\" />"), "");
        assert_eq!(clean("<th style=\"text-align: left\">h</th>"), "<th>h</th>");
    }

    #[test]
    fn malformed_markup_becomes_text() {
        assert_eq!(clean("<p onclick=x>t"), "&lt;p onclick=x>t");
        assert_eq!(clean("a < b"), "a &lt; b");
        assert_eq!(clean("<P>x</P>"), "&lt;P>x&lt;/P>");
        assert_eq!(clean("<!-- c -->"), "&lt;!-- c -->");
        assert_eq!(clean("<a href=\"x<y\">z</a>"), "&lt;a href=\"x&lt;y\">z");
        assert_eq!(
            clean("fish & chips &amp; &#39; &#x1F600; &bogus"),
            "fish &amp; chips &amp; &#39; &#x1F600; &amp;bogus"
        );
    }

    #[test]
    fn output_is_balanced() {
        assert_eq!(clean("<p><strong>x</p>"), "<p><strong>x</strong></p>");
        assert_eq!(clean("</p>x</em>"), "x");
        assert_eq!(clean("<ul><li>a"), "<ul><li>a</li></ul>");
    }
}
