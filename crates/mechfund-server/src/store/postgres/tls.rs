//! TLS to PostgreSQL with libpq's settings: `sslmode` and `sslrootcert` in the URL's query (or
//! `PGSSLMODE` and `PGSSLROOTCERT`), so a URL that works with `psql` works here. The client's
//! own parser knows only three modes and no `sslrootcert`, so both are taken out of the URL
//! here ([`split`]) and the rest is left to it.
//!
//! | `sslmode` | TLS | the certificate |
//! |---|---|---|
//! | `disable` | never | - |
//! | `allow` | only if the server refuses plaintext | checked against `sslrootcert` if given |
//! | `prefer` (default) | if the server offers it | checked against `sslrootcert` if given |
//! | `require` | always | checked against `sslrootcert` if given, else not at all |
//! | `verify-ca` | always | signed by a root: `sslrootcert`, else the system's |
//! | `verify-full` | always | as `verify-ca`, and issued for the host connected to |
//!
//! `sslrootcert=system` means the system's roots and `verify-full` (libpq 16); a weaker mode with
//! it is refused, as libpq does.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    const ALL: [SslMode; 6] =
        [SslMode::Disable, SslMode::Allow, SslMode::Prefer, SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull];

    /// The name libpq gives it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn parse(text: &str, from: &str) -> Result<SslMode, String> {
        SslMode::ALL.into_iter().find(|mode| mode.name() == text).ok_or_else(|| {
            format!(
                "{from}={text:?} is not an sslmode; give one of disable, allow, prefer, require, verify-ca, verify-full"
            )
        })
    }
}

/// Where the trusted root certificates come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Roots {
    /// The PEM file `sslrootcert` (or `PGSSLROOTCERT`, named in `from`) names.
    File { path: PathBuf, from: &'static str },
    /// The system's store (`sslrootcert=system`, or a `verify-*` mode without `sslrootcert`).
    System,
}

/// The TLS settings of one URL, and the rest of the URL for the client's parser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub mode: SslMode,
    /// `None`: no certificate is checked (`require`, `prefer` and `allow` without a root file).
    pub roots: Option<Roots>,
}

/// The URL without `sslmode` and `sslrootcert`, and the settings they (or `PGSSLMODE` and
/// `PGSSLROOTCERT`, when the URL has none) give; `env` reads the environment.
///
/// # Errors
/// An unknown `sslmode`, or `sslrootcert=system` with a mode weaker than `verify-full`.
pub fn split(url: &str, env: impl Fn(&str) -> Option<String>) -> Result<(String, Settings), String> {
    let (base, query) = split_query(url);
    let mut mode = None;
    let mut root = None;
    let mut kept = Vec::new();
    for pair in query.into_iter().flat_map(|q| q.split('&')).filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => mode = Some((decode(value), "sslmode")),
            "sslrootcert" => root = Some((decode(value), "sslrootcert")),
            "sslcert" | "sslkey" | "sslpassword" => {
                return Err(format!(
                    "{key}: client certificates are not supported; authenticate with a password (SCRAM)"
                ));
            }
            "sslcrl" | "sslcrldir" => return Err(format!("{key}: certificate revocation lists are not supported")),
            _ => kept.push(pair),
        }
    }
    let mode = mode.or_else(|| env("PGSSLMODE").map(|m| (m, "PGSSLMODE")));
    let root = root.or_else(|| env("PGSSLROOTCERT").map(|r| (r, "PGSSLROOTCERT"))).filter(|(r, _)| !r.is_empty());
    let system = root.as_ref().is_some_and(|(r, _)| r == "system");
    let mode = match mode {
        Some((text, from)) => SslMode::parse(&text, from)?,
        None if system => SslMode::VerifyFull,
        None => SslMode::Prefer,
    };
    if system && mode != SslMode::VerifyFull {
        return Err(format!(
            "sslrootcert=system needs sslmode=verify-full (it was {}), as with libpq: the system's roots sign \
             certificates for any host",
            mode.name()
        ));
    }
    let roots = match root {
        _ if mode == SslMode::Disable => None,
        Some(_) if system => Some(Roots::System),
        Some((path, from)) => Some(Roots::File { path: PathBuf::from(path), from }),
        None if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) => Some(Roots::System),
        None => None,
    };
    let rest = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
    Ok((rest, Settings { mode, roots }))
}

/// The URL before its query, and the query: the first `?` after the user info (which the
/// client's parser reads up to the first `@`, so a password may hold a `?`).
fn split_query(url: &str) -> (&str, Option<&str>) {
    let after_user = url.find('@').map_or(0, |at| at + 1);
    match url[after_user..].find('?') {
        Some(q) => (&url[..after_user + q], Some(&url[after_user + q + 1..])),
        None => (url, None),
    }
}

/// Percent-decodes a query value (`%2F`; a `+` stays a `+`, as with libpq and the client's
/// parser).
fn decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Settings {
    /// The connector these settings call for: certificates checked as the mode says.
    ///
    /// # Errors
    /// The root file cannot be read or holds no certificate, or the system's store is empty.
    pub fn connector(&self) -> Result<MakeRustlsConnect, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match &self.roots {
            None => Arc::new(Weaker { chain: None, provider: provider.clone() }),
            Some(roots) => {
                let store = Arc::new(load(roots)?);
                let webpki = WebPkiServerVerifier::builder_with_provider(store, provider.clone())
                    .build()
                    .map_err(|e| format!("{}: {e}", describe(roots)))?;
                if self.mode == SslMode::VerifyFull {
                    webpki
                } else {
                    Arc::new(Weaker { chain: Some(webpki), provider: provider.clone() })
                }
            }
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("setting up TLS: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(MakeRustlsConnect::new(config))
    }

    /// Why a handshake that failed with `error` failed, and what to change, for the hosts
    /// `hosts`.
    #[must_use]
    pub fn explain(&self, error: &rustls::Error, hosts: &str) -> String {
        let mode = self.mode.name();
        let roots = self.roots.as_ref().map_or_else(|| "no root certificate".to_owned(), describe);
        match error {
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) => format!(
                "the server's certificate is not issued for the host {hosts} (sslmode={mode} checks the host \
                 name; the certificate's issuer was trusted, from {roots}): connect by a name the certificate \
                 holds, or use sslmode=verify-ca to check only the issuer ({error})"
            ),
            rustls::Error::InvalidCertificate(_) => {
                let unchecked = if matches!(self.mode, SslMode::VerifyCa | SslMode::VerifyFull) {
                    "or sslmode=require without sslrootcert to encrypt without checking the certificate"
                } else {
                    "or no sslrootcert to encrypt without checking the certificate (with a root file, every \
                     sslmode checks it, as with libpq)"
                };
                format!(
                    "the server's certificate did not verify with sslmode={mode} against {roots}: {error}; give \
                     sslrootcert=FILE (or PGSSLROOTCERT) naming the PEM file of the CA that signed it (your \
                     provider's CA bundle), {unchecked}"
                )
            }
            other => format!("TLS with {hosts} failed (sslmode={mode}, {roots}): {other}"),
        }
    }
}

/// What `roots` are, for messages.
fn describe(roots: &Roots) -> String {
    match roots {
        Roots::File { path, from } => format!("{from}={}", path.display()),
        Roots::System => "the system's root certificates (no sslrootcert given)".to_owned(),
    }
}

/// The root certificates `roots` names.
fn load(roots: &Roots) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::File { path, from } => {
            let certs = read_pem(path).map_err(|e| format!("{from}={}: {e}", path.display()))?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("{from}={}: no usable CA certificate in it", path.display()));
            }
        }
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
                return Err(format!(
                    "no root certificate in the system's store ({}); give sslrootcert=FILE (or PGSSLROOTCERT) \
                     naming your provider's CA bundle, or set SSL_CERT_FILE",
                    if errors.is_empty() { "it is empty".to_owned() } else { errors.join("; ") }
                ));
            }
        }
    }
    Ok(store)
}

fn read_pem(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let text = std::fs::read(path).map_err(|e| e.to_string())?;
    let certs = CertificateDer::pem_slice_iter(&text).collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no PEM certificate (-----BEGIN CERTIFICATE-----) in it".to_owned());
    }
    Ok(certs)
}

/// The certificate checks short of `verify-full`: `verify-ca` checks the chain against the roots
/// but not the host name; `require` (and `prefer`, `allow`) without a root checks nothing (as
/// libpq: it protects against listening, not against a server that pretends). Either way the
/// handshake's signature is checked against the certificate the server sent.
#[derive(Debug)]
struct Weaker {
    /// The roots' verifier for `verify-ca`; `None`: the certificate is not checked.
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Weaker {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else { return Ok(ServerCertVerified::assertion()) };
        // The name is checked after the chain: this error means the chain verified.
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::{Roots, Settings, SslMode, decode, split};
    use std::path::PathBuf;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_ssl_parameters_are_taken_out_and_the_rest_is_kept() {
        let (rest, settings) = split(
            "postgres://u:p?w@db.example/app?connect_timeout=3&sslmode=verify-full&sslrootcert=%2Fetc%2Frds%20ca.pem&application_name=x",
            no_env,
        )
        .unwrap();
        assert_eq!(rest, "postgres://u:p?w@db.example/app?connect_timeout=3&application_name=x");
        let root = Roots::File { path: PathBuf::from("/etc/rds ca.pem"), from: "sslrootcert" };
        assert_eq!(settings, Settings { mode: SslMode::VerifyFull, roots: Some(root) });
    }

    #[test]
    fn libpq_defaults_apply() {
        let plain = |url: &str| split(url, no_env).unwrap().1;
        assert_eq!(plain("postgres://db/app"), Settings { mode: SslMode::Prefer, roots: None });
        assert_eq!(plain("postgres://db/app?sslmode=require"), Settings { mode: SslMode::Require, roots: None });
        assert_eq!(
            plain("postgres://db/app?sslmode=verify-ca"),
            Settings { mode: SslMode::VerifyCa, roots: Some(Roots::System) }
        );
        assert_eq!(
            plain("postgres://db/app?sslrootcert=system"),
            Settings { mode: SslMode::VerifyFull, roots: Some(Roots::System) }
        );
        assert!(split("postgres://db/app?sslrootcert=system&sslmode=require", no_env).is_err());
    }

    #[test]
    fn the_environment_counts_only_where_the_url_is_silent() {
        let env = |name: &str| match name {
            "PGSSLMODE" => Some("verify-ca".to_owned()),
            "PGSSLROOTCERT" => Some("/ca.pem".to_owned()),
            _ => None,
        };
        let (_, from_env) = split("postgres://db/app", env).unwrap();
        let env_root = Roots::File { path: PathBuf::from("/ca.pem"), from: "PGSSLROOTCERT" };
        assert_eq!(from_env, Settings { mode: SslMode::VerifyCa, roots: Some(env_root) });
        let (_, from_url) = split("postgres://db/app?sslmode=require&sslrootcert=/mine.pem", env).unwrap();
        let url_root = Roots::File { path: PathBuf::from("/mine.pem"), from: "sslrootcert" };
        assert_eq!(from_url, Settings { mode: SslMode::Require, roots: Some(url_root) });
        let (_, disabled) = split("postgres://db/app?sslmode=disable", env).unwrap();
        assert_eq!(disabled, Settings { mode: SslMode::Disable, roots: None });
    }

    #[test]
    fn an_unknown_mode_is_refused_with_the_known_ones() {
        let error = split("postgres://db/app?sslmode=verify", no_env).unwrap_err();
        assert_eq!(
            error,
            "sslmode=\"verify\" is not an sslmode; give one of disable, allow, prefer, require, verify-ca, verify-full"
        );
        let error = split("postgres://db/app?sslcert=/c.pem&sslkey=/k.pem", no_env).unwrap_err();
        assert_eq!(error, "sslcert: client certificates are not supported; authenticate with a password (SCRAM)");
        let from_env = |_: &str| Some("on".to_owned());
        assert!(split("postgres://db/app", from_env).unwrap_err().starts_with("PGSSLMODE=\"on\""));
    }

    #[test]
    fn values_are_percent_decoded() {
        assert_eq!(decode("%2Fa%20b+c%zz%4"), "/a b+c%zz%4");
    }
}
