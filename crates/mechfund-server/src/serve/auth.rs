//! The admin token that writes need (`Authorization: Bearer <token>`): `MECHFUND_ADMIN_TOKEN`,
//! else `DIR/admin-token`, created on first start from 32 random bytes (hex) with mode 0600.
//! Tokens are compared in constant time.

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::path::Path;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::store::{TOKEN_FILE, hex};

/// Where the token came from, for the start-up message.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// The environment variable.
    Env,
    /// An existing token file.
    File,
    /// A token file created now.
    Created,
}

/// Loads the admin token: the environment, else the token file in `data`, created if missing.
///
/// # Errors
/// If the token file cannot be read or created.
pub fn load_token(data: &Path) -> io::Result<(String, TokenSource)> {
    let long_enough = |token: &str, from: &str| {
        if token.chars().count() < MIN_TOKEN_LEN {
            return Err(io::Error::other(format!(
                "{from} holds a token of {} characters; an admin token needs at least {MIN_TOKEN_LEN} \
                 (remove it to have a random one made)",
                token.chars().count()
            )));
        }
        Ok(())
    };
    if let Ok(token) = std::env::var("MECHFUND_ADMIN_TOKEN")
        && !token.trim().is_empty()
    {
        long_enough(token.trim(), "MECHFUND_ADMIN_TOKEN")?;
        return Ok((token.trim().to_owned(), TokenSource::Env));
    }
    let path = data.join(TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => {
            long_enough(text.trim(), &path.display().to_string())?;
            return Ok((text.trim().to_owned(), TokenSource::File));
        }
        Ok(_) => return Err(io::Error::other(format!("{} is empty", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let token = random_token()?;
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path)?;
    writeln!(file, "{token}")?;
    file.sync_all()?;
    Ok((token, TokenSource::Created))
}

/// 32 random bytes as hex: a token nobody can guess.
///
/// # Errors
/// If the system's randomness cannot be read.
pub fn random_token() -> io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex(&bytes))
}

/// Equality that takes the same time wherever the first difference is.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        diff |= x ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// The credentials of an `Authorization` header value: the token of the `Bearer` scheme, whose
/// name is case-insensitive (RFC 7235), with the spaces around it removed; `None` for any other
/// scheme or no token.
pub fn bearer(value: &str) -> Option<&str> {
    let value = value.trim_start();
    let (scheme, token) = value.split_once([' ', '\t'])?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Middleware for the write routes (and, with `--private`, the reads): 401 unless the bearer
/// token matches.
pub async fn require_token(State(token): State<std::sync::Arc<str>>, request: Request, next: Next) -> Response {
    let header = request.headers().get(header::AUTHORIZATION);
    let given = header.and_then(|v| v.to_str().ok()).and_then(bearer);
    match given {
        Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => next.run(request).await,
        _ if header.is_some() => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the bearer token is not valid (expected `Authorization: Bearer <token>` with the admin token)",
        )
        .into_response(),
        _ => {
            let what = if request.method().is_safe() {
                "reads of this server need an `Authorization: Bearer <token>` header (it runs with --private)"
            } else {
                "writes need an `Authorization: Bearer <token>` header"
            };
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", what).into_response()
        }
    }
}

/// The shortest admin token accepted: shorter ones are guessable.
pub const MIN_TOKEN_LEN: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_spaces_do_not_matter() {
        for value in ["Bearer abc", "bearer abc", "BEARER abc", "BeArEr   abc  ", "  Bearer\tabc"] {
            assert_eq!(bearer(value), Some("abc"), "{value:?}");
        }
        for value in ["Basic abc", "Bearer", "Bearer   ", "Bearerabc", "abc", ""] {
            assert_eq!(bearer(value), None, "{value:?}");
        }
    }

    #[test]
    fn compares_whole_tokens() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
