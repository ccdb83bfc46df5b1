//! The first load: `&now=` (a frozen clock), `&rules=URL` (or the server's rules), then
//! `?log=URL` or, quietly, the server's log.

use std::rc::Rc;

use mechfund_core::{Now, Rules};
use wasm_bindgen_futures::spawn_local;
use yew::{UseReducerHandle, hook, use_effect_with};

use super::loads::Loads;
use super::source::{SERVER_RULES, Source};
use crate::browser;
use crate::state::action::Action;
use crate::state::model::Model;

/// On the first render: reads `&now=` and the rules into the state, then starts the first load
/// with them (`?log=URL`, else the server's log of `&mech=`, quietly). A bad `&now=` or rules
/// the page asked for stop there with the reason on screen.
#[hook]
pub fn use_first_load(model: &UseReducerHandle<Model>, loads: &Loads) {
    let dispatch = model.dispatcher();
    let loads = loads.clone();
    use_effect_with((), move |()| {
        let now = browser::query_param("now");
        spawn_local(async move {
            let fixed = match now.as_deref().map(Now::parse) {
                Some(Ok(now)) => Some(now),
                Some(Err(e)) => {
                    dispatch.dispatch(Action::Failed {
                        generation: 0,
                        message: format!(
                            "now={}: {e}. Remove it to follow the browser clock.",
                            now.unwrap_or_default()
                        ),
                    });
                    return;
                }
                None => None,
            };
            dispatch.dispatch(Action::Now(fixed.clone()));
            let rules_url = browser::query_param("rules");
            let rules = match initial_rules(rules_url.as_deref()).await {
                Ok(rules) => Rc::new(rules.unwrap_or_default()),
                Err(message) => {
                    dispatch.dispatch(Action::Failed { generation: 0, message });
                    return;
                }
            };
            dispatch.dispatch(Action::Rules(Rc::clone(&rules)));
            let loads = loads.with(rules, fixed);
            let mech = browser::query_param("mech").unwrap_or_else(|| "main".to_owned());
            match browser::query_param("log") {
                Some(url) => loads.load(Source::Url(url), mech, false),
                None => loads.load_server(mech),
            }
        });
    });
}

/// Reads `&rules=URL` (or the server's rules), in place before the first load.
async fn initial_rules(url: Option<&str>) -> Result<Option<Rules>, String> {
    let (url, quiet) = match url {
        Some(url) => (url, false),
        None => (SERVER_RULES, true),
    };
    let bytes = match browser::fetch_bytes(url, "the rules", &mut |_| {}).await {
        Ok(bytes) => bytes.to_vec(),
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
