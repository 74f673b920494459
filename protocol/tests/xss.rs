//! An XSS corpus through the markdown renderer. Rather than looking for known-bad strings, the
//! output is parsed and checked against what may exist at all: allowed tags, allowed
//! attributes, and link targets with an allowed scheme. ammonia, the reference sanitiser, is
//! the oracle: configured with the same allow-list, it must find nothing to remove.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use protocol::render_markdown;

const CORPUS: &[&str] = &[
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<ScRiPt>alert(1)</sCrIpT>",
    "<img src=x onerror=alert(1)>",
    "<IMG SRC=\"javascript:alert('XSS');\">",
    "<svg/onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    "<iframe src=\"javascript:alert(1)\"></iframe>",
    "<a href=\"javascript:alert(1)\">x</a>",
    "<a href=\"jav&#x09;ascript:alert(1)\">x</a>",
    "<div onclick=\"alert(1)\">click</div>",
    "<body onload=alert(1)>",
    "<style>*{background:url(javascript:alert(1))}</style>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<object data=\"data:text/html,<script>alert(1)</script>\"></object>",
    "<embed src=\"javascript:alert(1)\">",
    "<form action=\"javascript:alert(1)\"><input type=submit></form>",
    "<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">",
    "<base href=\"javascript:alert(1)//\">",
    "<link rel=stylesheet href=\"javascript:alert(1)\">",
    "<!--<script>alert(1)</script>-->",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "&#60;script&#62;alert(1)&#60;/script&#62;",
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](  javascript:alert(1)  )",
    "[click](java\u{0}script:alert(1))",
    "[click](&#106;avascript:alert(1))",
    "[click](&#x6A;avascript&#x3A;alert(1))",
    "[click](javascript&colon;alert(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[click](vbscript:msgbox(1))",
    "[click](file:///etc/passwd)",
    "[click](//evil.example/path)",
    "[click](/relative/path)",
    "[click]( \"onmouseover=alert(1))",
    "[x](https://ok.example \"title\" onmouseover=\"alert(1)\")",
    "[x](https://ok.example\"onmouseover=\"alert(1))",
    "![x](javascript:alert(1))",
    "![x](https://evil.example/track.png)",
    "![x\"onerror=\"alert(1)](https://evil.example/x.png)",
    "[ref]\n\n[ref]: javascript:alert(1)",
    "<javascript:alert(1)>",
    "<https://ok.example/?q=<script>>",
    "`<script>alert(1)</script>`",
    "```html\n<script>alert(1)</script>\n```",
    "**<img src=x onerror=alert(1)>**",
    "> <iframe srcdoc=\"<script>alert(1)</script>\">",
    "| a | b |\n|---|---|\n| <script>alert(1)</script> | <img src=x onerror=alert(1)> |",
    "<a href=\"https://ok.example\" onclick=\"alert(1)\" style=\"position:fixed\">x</a>",
    "<details open ontoggle=alert(1)>",
    "<x onpointerenter=alert(1)>hover</x>",
    "\"><script>alert(1)</script>",
    "'><img src=x onerror=alert(1)>",
    "<<script>script>alert(1)<</script>/script>",
];

const TAGS: &[&str] = &[
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

/// A start tag in the sanitiser's serialised output: `<name attr="value" ...>`.
struct Tag {
    name: String,
    attrs: Vec<(String, String)>,
}

/// Reads the tags of well-formed serialised HTML (quoted attributes, `<` always a tag in text
/// as ammonia escapes it). Panics on anything it does not understand, so odd output fails.
fn tags(html: &str) -> Vec<Tag> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        rest = &rest[start + 1..];
        if let Some(after) = rest.strip_prefix('/') {
            let end = after.find('>').expect("closing tag ends");
            rest = &after[end + 1..];
            continue;
        }
        let name_end = rest.find([' ', '>', '/']).expect("tag name");
        let name = rest[..name_end].to_ascii_lowercase();
        rest = &rest[name_end..];
        let mut attrs = Vec::new();
        loop {
            rest = rest.trim_start_matches([' ', '/']);
            if let Some(after) = rest.strip_prefix('>') {
                rest = after;
                break;
            }
            let eq = rest.find('=').expect("attribute has a value");
            let attr = rest[..eq].to_ascii_lowercase();
            let value_start = rest[eq + 1..].strip_prefix('"').expect("quoted attribute");
            let close = value_start.find('"').expect("attribute closes");
            attrs.push((attr, value_start[..close].to_owned()));
            rest = &value_start[close + 1..];
        }
        out.push(Tag { name, attrs });
    }
    out
}

/// What a browser would see as the link's scheme: entities decoded, blanks and controls gone.
fn scheme(href: &str) -> Option<String> {
    let decoded = href
        .replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">");
    assert!(
        !decoded.contains("&#"),
        "numeric entity left in a URL: {href}"
    );
    let cleaned: String = decoded
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .collect();
    let colon = cleaned.find(':')?;
    let first_slash = cleaned.find('/').unwrap_or(usize::MAX);
    (colon < first_slash).then(|| cleaned[..colon].to_ascii_lowercase())
}

/// Panics when `html` (rendered from `input`) holds anything outside the allow-list.
fn assert_inert(input: &str, html: &str) {
    for tag in tags(html) {
        assert!(
            TAGS.contains(&tag.name.as_str()),
            "tag <{}> from {input:?}: {html}",
            tag.name
        );
        for (attr, value) in &tag.attrs {
            match (tag.name.as_str(), attr.as_str()) {
                ("a", "href") => {
                    let scheme = scheme(value);
                    assert!(
                        matches!(scheme.as_deref(), Some("http" | "https" | "mailto")),
                        "href {value:?} from {input:?}: {html}"
                    );
                }
                ("a", "rel") => assert_eq!(value, "noopener noreferrer nofollow"),
                ("a", "target") => assert_eq!(value, "_blank"),
                ("a", "title") | ("ol", "start") => {}
                _ => panic!("attribute {attr} on <{}> from {input:?}: {html}", tag.name),
            }
        }
    }
}

/// ammonia with our allow-list.
fn oracle(html: &str) -> String {
    ammonia::Builder::empty()
        .tags(TAGS.iter().copied().collect())
        .tag_attributes(HashMap::from([
            ("a", HashSet::from(["href", "title", "target"])),
            ("ol", HashSet::from(["start"])),
        ]))
        .url_schemes(HashSet::from(["http", "https", "mailto"]))
        .url_relative(ammonia::UrlRelative::Deny)
        .link_rel(Some("noopener noreferrer nofollow"))
        .clean(html)
        .to_string()
}

/// Tags with their attributes sorted, for comparing two serialisations of the same markup.
fn shape(html: &str) -> Vec<(String, Vec<(String, String)>)> {
    tags(html)
        .into_iter()
        .map(|mut t| {
            t.attrs.sort();
            (t.name, t.attrs)
        })
        .collect()
}

fn assert_oracle_agrees(input: &str, html: &str) {
    let reference = oracle(html);
    assert_eq!(
        shape(html),
        shape(&reference),
        "ammonia would change the output of {input:?}:\n ours: {html}\n ammonia: {reference}"
    );
}

#[test]
fn nothing_executable_survives_rendering() {
    for input in CORPUS {
        let html = render_markdown(input);
        assert_inert(input, &html);
        assert_oracle_agrees(input, &html);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Markdown and HTML fragments in random order: the output stays inert and ammonia agrees.
    #[test]
    fn random_markup_stays_inert(parts in prop::collection::vec(prop_oneof![
        Just("<"), Just(">"), Just("&"), Just("\""), Just("'"), Just("`"), Just("\n"), Just(" "),
        Just("["), Just("]"), Just("("), Just(")"), Just("!"), Just("*"), Just("_"), Just("#"),
        Just("-"), Just("|"), Just(":"), Just("/"), Just("="), Just(";"), Just("\\"),
        Just("script"), Just("img"), Just("a"), Just("href"), Just("onerror"), Just("javascript"),
        Just("data"), Just("https"), Just("mailto"), Just("&#x6A;"), Just("&#106;"), Just("&amp;"),
        Just("&colon;"), Just("\t"), Just("\u{0}"), Just("+1"), Just("x"),
    ], 0..40)) {
        let input: String = parts.concat();
        let html = render_markdown(&input);
        assert_inert(&input, &html);
        assert_oracle_agrees(&input, &html);
        // Already clean: a second pass of the sanitiser changes nothing.
        assert_eq!(protocol::markdown::sanitize::clean(&html), html);
    }
}

#[test]
fn every_link_gets_rel() {
    for input in [
        "[a](https://x.example)",
        "<https://x.example>",
        "[m](mailto:a@x.example)",
    ] {
        let html = render_markdown(input);
        for tag in tags(&html).into_iter().filter(|t| t.name == "a") {
            assert!(
                tag.attrs
                    .iter()
                    .any(|(k, v)| k == "rel" && v == "noopener noreferrer nofollow"),
                "{html}"
            );
        }
    }
}

#[test]
fn typed_html_is_visible_as_text() {
    let html = render_markdown("<script>alert(1)</script>");
    assert_eq!(html, "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>\n");
}

#[test]
fn the_checker_itself_catches_bad_output() {
    // Guard against a checker that passes everything: feed it output that must fail.
    let bad = tags("<p><img src=\"x\"></p>");
    assert!(bad.iter().any(|t| !TAGS.contains(&t.name.as_str())));
    assert_eq!(
        scheme(" Java\tScript:alert(1)").as_deref(),
        Some("javascript")
    );
    assert_eq!(scheme("https://x.example/a:b").as_deref(), Some("https"));
    assert_eq!(scheme("//x.example/a:b"), None);
    let attrs = tags("<a href=\"x\" onclick=\"y\">z</a>").remove(0).attrs;
    assert_eq!(attrs.len(), 2);
}
