//! Loading a log: file picker, drag-and-drop, paste, a URL, the bundled sample; the replay
//! progress bar; load errors; the mech selector.

use web_sys::{DragEvent, HtmlInputElement, HtmlSelectElement, HtmlTextAreaElement};
use yew::prelude::*;

use crate::format;
use crate::loading::loads::Loads;
use crate::loading::source::{SAMPLE_MIXED_URL, SAMPLE_URL, Source};
use crate::replay_job::Progress;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub loads: Loads,
    pub loading: Option<(String, Progress)>,
    pub failed: Option<String>,
    /// The log on screen, if any.
    pub log_name: Option<String>,
    /// Its size in bytes and lines.
    pub log_size: Option<(u64, u64)>,
    pub mechs: Vec<String>,
    pub mech: String,
    pub on_mech: Callback<String>,
}

#[function_component(Loader)]
pub fn loader(props: &Props) -> Html {
    let dragging = use_state(|| false);
    let paste_open = use_state(|| false);
    let paste_ref = use_node_ref();
    let url_ref = use_node_ref();
    let mech = props.mech.clone();

    let on_file = {
        let loads = props.loads.clone();
        let mech = mech.clone();
        Callback::from(move |e: Event| {
            let input: HtmlInputElement = e.target_unchecked_into();
            if let Some(file) = input.files().and_then(|files| files.get(0)) {
                loads.load(Source::File(file), mech.clone(), false);
            }
            input.set_value(""); // picking the same file again reloads it
        })
    };
    let on_drop = {
        let loads = props.loads.clone();
        let dragging = dragging.clone();
        let mech = mech.clone();
        Callback::from(move |e: DragEvent| {
            e.prevent_default();
            dragging.set(false);
            if let Some(file) = e.data_transfer().and_then(|d| d.files()).and_then(|files| files.get(0)) {
                loads.load(Source::File(file), mech.clone(), false);
            }
        })
    };
    let on_drag_over = {
        let dragging = dragging.clone();
        Callback::from(move |e: DragEvent| {
            e.prevent_default();
            if !*dragging {
                dragging.set(true);
            }
        })
    };
    let on_drag_leave = {
        let dragging = dragging.clone();
        Callback::from(move |_: DragEvent| dragging.set(false))
    };
    let sample = |url: &'static str| {
        let loads = props.loads.clone();
        let mech = mech.clone();
        Callback::from(move |_: MouseEvent| loads.load(Source::Url(url.to_owned()), mech.clone(), false))
    };
    let on_paste_toggle = {
        let paste_open = paste_open.clone();
        Callback::from(move |_: MouseEvent| paste_open.set(!*paste_open))
    };
    let on_paste_submit = {
        let loads = props.loads.clone();
        let paste_ref = paste_ref.clone();
        let mech = mech.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            if let Some(area) = paste_ref.cast::<HtmlTextAreaElement>() {
                loads.load(Source::Text(area.value()), mech.clone(), false);
            }
        })
    };
    let on_url_submit = {
        let loads = props.loads.clone();
        let url_ref = url_ref.clone();
        let mech = mech.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            if let Some(input) = url_ref.cast::<HtmlInputElement>() {
                let url = input.value().trim().to_owned();
                if !url.is_empty() {
                    loads.load(Source::Url(url), mech.clone(), false);
                }
            }
        })
    };
    let on_mech = {
        let on_mech = props.on_mech.clone();
        Callback::from(move |e: Event| {
            let select: HtmlSelectElement = e.target_unchecked_into();
            on_mech.emit(select.value());
        })
    };

    let first_visit = props.log_name.is_none() && props.loading.is_none();
    let zone_class = classes!("dropzone", dragging.then_some("dragging"), first_visit.then_some("first-visit"));
    html! {
        <section class="card loader" aria-labelledby="load-title">
            <h2 id="load-title">{ "Event log" }</h2>
            <div class={zone_class} ondrop={on_drop} ondragover={on_drag_over} ondragleave={on_drag_leave}>
                if first_visit {
                    <p class="lead">{ "Load a mech's events.jsonl to see its progress. Nothing is uploaded: the log is replayed in this page." }</p>
                }
                <div class="load-actions">
                    <button type="button" class="primary" onclick={sample(SAMPLE_URL)}>{ "Load the sample log" }</button>
                    <label class="button file-button">
                        { "Choose a file…" }
                        <input type="file" data-testid="log-input" accept=".jsonl,.json,.txt,.log,application/x-ndjson,text/plain" onchange={on_file} />
                    </label>
                    <button type="button" onclick={on_paste_toggle} aria-expanded={(*paste_open).to_string()}>{ "Paste…" }</button>
                </div>
                <p class="hint">
                    { "…or drop a file here. Another sample: " }
                    <button type="button" class="link" onclick={sample(SAMPLE_MIXED_URL)}>{ "1,500 events with rewritten history" }</button>
                </p>
                <form class="url-form" onsubmit={on_url_submit}>
                    <label for="log-url">{ "From a URL" }</label>
                    <input id="log-url" ref={url_ref} type="url" placeholder="https://…/events.jsonl" />
                    <button type="submit">{ "Load" }</button>
                </form>
                if *paste_open {
                    <form class="paste-form" onsubmit={on_paste_submit}>
                        <label for="log-paste">{ "Paste events.jsonl lines" }</label>
                        <textarea id="log-paste" ref={paste_ref} rows="6" spellcheck="false" />
                        <button type="submit">{ "Replay pasted lines" }</button>
                    </form>
                }
            </div>
            if let Some((what, progress)) = &props.loading {
                <div class="progress-row" role="status">
                    <label for="replay-progress">{ format!("{} {what}… {:.0}%", progress.phase, progress.fraction * 100.0) }</label>
                    <progress id="replay-progress" data-testid="replay-progress" max="1" value={progress.fraction.to_string()}></progress>
                </div>
            }
            if let Some(message) = &props.failed {
                <p class="error" role="alert">{ message }</p>
            }
            if let Some(name) = &props.log_name {
                <div class="loaded-row">
                    <span class="loaded-name">
                        { "Showing " }<strong>{ name }</strong>
                        if let Some((bytes, lines)) = props.log_size {
                            <span class="log-size">{ format!(" · {} · {} {}", format::bytes(bytes), format::count(i64::try_from(lines).unwrap_or(i64::MAX)), if lines == 1 { "line" } else { "lines" }) }</span>
                        }
                    </span>
                    if props.mechs.len() > 1 {
                        <label class="mech-select">
                            { "Mech " }
                            <select onchange={on_mech} aria-label="Mech">
                                { for props.mechs.iter().map(|m| html! {
                                    <option value={m.clone()} selected={*m == props.mech}>{ m }</option>
                                }) }
                            </select>
                        </label>
                    } else {
                        <span class="mech-name">{ format!("mech {}", props.mech) }</span>
                    }
                </div>
            }
        </section>
    }
}
