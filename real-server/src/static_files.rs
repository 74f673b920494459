//! `--client-dir`: the built web client, served from the same port as the room.
//!
//! Only regular files inside the directory are served: no path segment may be empty, `.` or
//! `..` or start with a dot (no `/.env`, no `/.git/…`), and the file, with every symlink
//! resolved, must still be inside the directory (a symlink out of it is not followed). It
//! never redirects (a `//host` redirect would send a browser to another site): what is not a
//! file is 404.
//!
//! A file with a precompressed copy beside it (`FILE.br`, `FILE.gz`, written by
//! `scripts/build-client.sh`) is sent as that copy to a browser that accepts the encoding.
//! Files whose names carry a content hash (trunk's `client-<hash>.wasm`) may be cached for a
//! year; anything else is revalidated.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

/// The client's directory, resolved once at start.
#[derive(Debug, Clone)]
pub struct ClientDir {
    root: PathBuf,
}

impl ClientDir {
    /// Resolves `dir` (it must exist).
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        Ok(Self {
            root: dir.canonicalize()?,
        })
    }

    /// The file a request path names, if it is one we serve.
    pub fn resolve(&self, path: &str) -> Option<PathBuf> {
        let path = path.strip_prefix('/')?;
        let mut relative = PathBuf::new();
        for segment in path.split('/') {
            let segment = percent_decode(segment)?;
            let safe = !segment.is_empty()
                && !segment.starts_with('.')
                && !segment.contains(['/', '\\', '\0']);
            if !safe {
                return None;
            }
            relative.push(segment);
        }
        let file = self.root.join(relative).canonicalize().ok()?;
        let metadata = std::fs::metadata(&file).ok()?;
        (file.starts_with(&self.root) && metadata.is_file()).then_some(file)
    }

    /// Answers a GET for `uri` from a browser that sent `request` headers.
    pub async fn serve(&self, uri: &Uri, request: &HeaderMap) -> Response {
        let Some(file) = self.resolve(uri.path()) else {
            return (StatusCode::NOT_FOUND, "not found\n").into_response();
        };
        let accepted = accepted_encodings(request);
        // The best precompressed copy the browser takes, else the file itself.
        let mut chosen = (file.clone(), None);
        for (encoding, suffix) in [("br", "br"), ("gzip", "gz")] {
            let copy = PathBuf::from(format!("{}.{suffix}", file.display()));
            if accepted.contains(&encoding) && copy.is_file() {
                chosen = (copy, Some(encoding));
                break;
            }
        }
        let (path, encoding) = chosen;
        match tokio::fs::read(&path).await {
            Ok(bytes) => {
                let mut response = Body::from(bytes).into_response();
                let headers = response.headers_mut();
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime(&file)));
                headers.insert(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                );
                headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
                headers.insert(header::CACHE_CONTROL, cache_control(&file));
                if let Some(encoding) = encoding {
                    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
                }
                response
            }
            Err(_) => (StatusCode::NOT_FOUND, "not found\n").into_response(),
        }
    }
}

/// The encodings of an `Accept-Encoding` header that are not refused with `q=0`.
fn accepted_encodings(request: &HeaderMap) -> Vec<&'static str> {
    let mut accepted = Vec::new();
    for value in request.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else {
            continue;
        };
        for item in value.split(',') {
            let mut parts = item.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            for known in ["br", "gzip"] {
                if name.eq_ignore_ascii_case(known) && !refused {
                    accepted.push(known);
                }
            }
        }
    }
    accepted
}

/// A year for a file whose name carries a content hash (`name-<16 hex>.ext`); otherwise
/// revalidate each time.
fn cache_control(file: &Path) -> HeaderValue {
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let stem = stem.strip_suffix("_bg").unwrap_or(stem);
    let hashed = stem
        .rsplit_once('-')
        .is_some_and(|(_, hash)| hash.len() >= 15 && hash.chars().all(|c| c.is_ascii_hexdigit()));
    HeaderValue::from_static(if hashed {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    })
}

/// `%XX` escapes decoded; `None` for a bad escape or text that is not UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn mime(file: &Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("json") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_inside_the_directory() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.db"), "data").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.js"), "js").unwrap();
        std::fs::write(dir.path().join(".env"), "TOKEN=1").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a b.css"), "css").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(outside.path().join("secret.db"), dir.path().join("db"))
            .unwrap();
        let client = ClientDir::open(dir.path()).unwrap();
        assert!(client.resolve("/app.js").is_some());
        assert!(client.resolve("/sub/a%20b.css").is_some());
        for refused in [
            "/.env",
            "/%2eenv",
            "/db",
            "/../secret.db",
            "/sub/../app.js",
            "/sub",
            "/sub/",
            "//sub",
            "/",
            "/app.js%00",
            "/%zz",
            "/sub%2fa%20b.css",
        ] {
            assert!(client.resolve(refused).is_none(), "{refused}");
        }
    }
}
