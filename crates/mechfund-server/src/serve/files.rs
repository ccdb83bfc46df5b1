//! The dashboard (at `/`) and the JS package (at `/embed/`): built into the binary when they
//! were built before it ([`Dashboard`], [`Package`]), or a directory given with `--dist` /
//! `--embed`, served by tower-http's `ServeDir` except that no request path gets a 5xx.
//!
//! `ServeDir` answers 500 (and logs an ERROR) for every file-system error but "not found",
//! "permission denied" and "not a directory", and for a directory asked for in authority form
//! (`GET host:80`), whose redirect to `…/` it cannot build. A client picks the path, so it could
//! pick those at will: a segment longer than the file system's 255 bytes or a path deeper than
//! its 4096 (`ENAMETOOLONG`), a NUL. [`Files`] answers those 404 `not_found`, sends only the
//! origin form of a request's URI to `ServeDir`, and logs them as client errors (within the
//! budget of [`super::clientlog`]). A failure of the disk itself stays a 500, logged once.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tower::Service;
use tower_http::services::ServeDir;

use super::clientlog::client_error;
use super::error::ApiError;

/// The dashboard as built into the binary (`dist/` when the binary was built; read from there
/// at run time in debug builds).
#[derive(Debug, rust_embed::Embed)]
#[folder = "../../dist"]
#[allow_missing = true]
pub struct Dashboard;

/// The JS package as built into the binary (`examples/embed/pkg/`, as `cargo xtask wasm` builds it).
#[derive(Debug, rust_embed::Embed)]
#[folder = "../../examples/embed/pkg"]
#[allow_missing = true]
pub struct Package;

/// Where files come from.
#[derive(Clone, Debug)]
enum Source {
    /// A directory on disk.
    Dir(ServeDir),
    /// Files built into the binary.
    Embedded(fn(&str) -> Option<rust_embed::EmbeddedFile>),
}

/// The files of a directory or of the binary, as a service for `nest_service` and
/// `fallback_service`.
#[derive(Clone, Debug)]
pub struct Files {
    source: Source,
}

impl Files {
    /// The files under `dir` (`index.html` for a directory).
    pub fn new(dir: &Path) -> Files {
        Files { source: Source::Dir(ServeDir::new(dir)) }
    }

    /// The files built into the binary as `E`, if it holds `required` (else it was built before
    /// them, and there is nothing to serve).
    pub fn embedded<E: rust_embed::Embed>(required: &str) -> Option<Files> {
        E::get(required).is_some().then(|| Files { source: Source::Embedded(E::get) })
    }
}

/// A file built into the binary: `index.html` for a directory, a strong `ETag` (its sha256) with
/// `Cache-Control: no-cache`, 304 for a matching `If-None-Match`; only GET and HEAD.
fn embedded_file(get: fn(&str) -> Option<rust_embed::EmbeddedFile>, request: &Request) -> Response {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{} is not allowed on files", request.method()),
        )
        .into_response();
    }
    let path = request.uri().path().trim_start_matches('/');
    let name = if path.is_empty() || path.ends_with('/') { format!("{path}index.html") } else { path.to_owned() };
    let Some(file) = get(&name) else {
        return no_file(&shorten(request.uri().path()), "no such file in the binary");
    };
    let etag = format!("\"{}\"", crate::store::hex(&file.metadata.sha256_hash()));
    let matches = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim().trim_start_matches("W/") == etag || tag.trim() == "*"));
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = Body::from(file.data.into_owned()).into_response();
        if let Ok(kind) = HeaderValue::from_str(file.metadata.mimetype()) {
            response.headers_mut().insert(header::CONTENT_TYPE, kind);
        }
        response
    };
    let headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, etag);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

impl Service<Request> for Files {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // `ServeDir` without a fallback is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        // Origin form only: `ServeDir` builds a directory's redirect from the whole URI, and an
        // authority-form one (`GET host:80`) has a host but no scheme, which it cannot build.
        let Some(origin) = request.uri().path_and_query().filter(|p| p.as_str().starts_with('/')).cloned() else {
            let target = shorten(&request.uri().to_string());
            return Box::pin(async move { Ok(no_file(&target, "the request target is not a path")) });
        };
        *request.uri_mut() = Uri::from(origin);
        let dir = match &mut self.source {
            Source::Dir(dir) => dir,
            Source::Embedded(get) => {
                let response = embedded_file(*get, &request);
                return Box::pin(async move { Ok(response) });
            }
        };
        let path = shorten(request.uri().path());
        let answer = dir.try_call(request);
        Box::pin(async move {
            Ok(match answer.await {
                Ok(response) => response.map(Body::new),
                Err(e) if the_paths_fault(&e) => no_file(&path, &e.to_string()),
                Err(e) => {
                    tracing::error!(error = %e, path, "cannot read a file");
                    ApiError::internal().into_response()
                }
            })
        })
    }
}

/// File-system errors that a request's path causes (the rest are the disk's).
fn the_paths_fault(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound
            | io::ErrorKind::PermissionDenied
            | io::ErrorKind::NotADirectory
            | io::ErrorKind::IsADirectory
            // ENAMETOOLONG: a segment over 255 bytes, a path over 4096.
            | io::ErrorKind::InvalidFilename
            // A NUL in the path.
            | io::ErrorKind::InvalidInput
    )
}

/// 404 `not_found`, and a line in the log within the client-error budget.
fn no_file(path: &str, why: &str) -> Response {
    client_error!(path, why, "a request path names no file");
    ApiError::not_found("no file has this path").into_response()
}

/// The path as logged: at most 200 characters (a client may send kilobytes).
fn shorten(path: &str) -> String {
    match path.char_indices().nth(200) {
        Some((end, _)) => format!("{}…", &path[..end]),
        None => path.to_owned(),
    }
}
