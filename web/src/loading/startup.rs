//! What the page reads before its first load: `&rules=URL` (or the server's rules).

use mechfund_core::Rules;

use super::source::SERVER_RULES;
use crate::browser;

/// Reads `&rules=URL` (or the server's rules), in place before the first load.
pub async fn initial_rules(url: Option<&str>) -> Result<Option<Rules>, String> {
    let (url, quiet) = match url {
        Some(url) => (url, false),
        None => (SERVER_RULES, true),
    };
    let bytes = match browser::fetch_bytes(url, "the rules", &mut |_| {}).await {
        Ok(bytes) => bytes,
        Err(_) if quiet => return Ok(None),
        Err(message) => return Err(message),
    };
    let text = String::from_utf8_lossy(&bytes);
    match Rules::from_json(&text) {
        Ok(rules) => Ok(Some(rules)),
        Err(_) if quiet => Ok(None),
        Err(e) => Err(format!("The rules at {url} are not valid: {e}")),
    }
}
