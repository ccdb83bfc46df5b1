//! The dashboard (`--dist`, at `/`) and the JS package (`--embed`, at `/embed/`): tower-http's
//! `ServeDir`, except that no request path gets a 5xx.
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
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use tower::Service;
use tower_http::services::ServeDir;

use super::clientlog::client_error;
use super::error::ApiError;

/// The files of a directory, as a service for `nest_service` and `fallback_service`.
#[derive(Clone, Debug)]
pub struct Files {
    dir: ServeDir,
}

impl Files {
    /// The files under `dir` (`index.html` for a directory).
    pub fn new(dir: &Path) -> Files {
        Files { dir: ServeDir::new(dir) }
    }
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
        let path = shorten(request.uri().path());
        let answer = self.dir.try_call(request);
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
