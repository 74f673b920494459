//! `--client-dir`: the built web client, served from the same port as the room.
//!
//! Only regular files inside the directory are served: no path segment may be empty, `.` or
//! `..` or start with a dot (no `/.env`, no `/.git/…`), and the file, with every symlink
//! resolved, must still be inside the directory (a symlink out of it is not followed). It
//! never redirects (a `//host` redirect would send a browser to another site): what is not a
//! file is 404.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, Uri, header};
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

    /// Answers a GET for `uri`.
    pub async fn serve(&self, uri: &Uri) -> Response {
        let Some(file) = self.resolve(uri.path()) else {
            return (StatusCode::NOT_FOUND, "not found\n").into_response();
        };
        match tokio::fs::read(&file).await {
            Ok(bytes) => {
                let mut response = Body::from(bytes).into_response();
                let headers = response.headers_mut();
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime(&file)));
                headers.insert(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                );
                response
            }
            Err(_) => (StatusCode::NOT_FOUND, "not found\n").into_response(),
        }
    }
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
