//! The diagnostics panel: every line replay skipped (with its number and why), recorded values
//! that differ from what replay derives, and superseded level-ups — in plain language.

use std::rc::Rc;

use mechfund_core::replay::{DiagnosticKind, Severity};
use yew::prelude::*;

use crate::analysis::Analysis;
use crate::format::count;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub analysis: Rc<Analysis>,
}

/// How many items are listed before "show all" (a broken log can have a million).
const FIRST: usize = 200;

/// A heading for each kind, for people who do not know the contract's names.
fn title(kind: DiagnosticKind) -> &'static str {
    match kind {
        DiagnosticKind::BadLine => "Unreadable line",
        DiagnosticKind::DuplicateSeq => "Duplicate sequence number",
        DiagnosticKind::TsBackwards => "Time goes backwards",
        DiagnosticKind::InvalidPayload => "Invalid event data",
        DiagnosticKind::UnknownType => "Unknown event type",
        DiagnosticKind::BadDeleteTarget => "Deletion of a missing or undeletable event",
        DiagnosticKind::RecordedGoalDiffers => "Recorded goal differs from the formula",
        DiagnosticKind::LevelupMissing => "Level-up not recorded in the log",
        DiagnosticKind::LevelupExtra => "Recorded level-up that replay does not derive",
        DiagnosticKind::LevelupMismatch => "Recorded level-up differs",
        DiagnosticKind::Superseded => "Level-up superseded by a later deletion",
        DiagnosticKind::NoEvents => "No events",
        DiagnosticKind::BonusDeletion => "Deletion of an exact-hit bonus (changes nothing)",
        DiagnosticKind::DdcSnapshotDiffers => "DDC's own snapshot differs",
    }
}

fn kind_name(kind: DiagnosticKind) -> String {
    serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

#[function_component(Diagnostics)]
pub fn diagnostics(props: &Props) -> Html {
    let show_all = use_state(|| false);
    let list = &props.analysis.result.diagnostics;
    let warnings = list.iter().filter(|d| d.severity == Severity::Warning).count();
    let infos = list.len() - warnings;
    let shown = if *show_all { list.len() } else { list.len().min(FIRST) };
    let on_show_all = {
        let show_all = show_all.clone();
        Callback::from(move |_: MouseEvent| show_all.set(true))
    };
    #[allow(clippy::cast_possible_wrap, reason = "counts are small")]
    let summary = if list.is_empty() {
        "Every line replayed cleanly.".to_owned()
    } else {
        format!("{} warnings, {} notes", count(warnings as i64), count(infos as i64))
    };
    html! {
        <section class="card diagnostics" aria-labelledby="diagnostics-title">
            <details open={warnings > 0}>
                <summary>
                    <h2 id="diagnostics-title">{ "Diagnostics" }</h2>
                    <span class={classes!("diag-count", (warnings > 0).then_some("has-warnings"))}>{ summary }</span>
                </summary>
                <ol class="diag-list" data-testid="diagnostics" tabindex="0" aria-label="Diagnostics, by line">
                    { for list.iter().take(shown).map(|d| {
                        let kind = kind_name(d.kind);
                        let severity = if d.severity == Severity::Warning { "warning" } else { "info" };
                        let place = match (d.line, d.seq) {
                            (Some(line), Some(seq)) => format!("Line {line} (seq {seq})"),
                            (Some(line), None) => format!("Line {line}"),
                            (None, Some(seq)) => format!("Seq {seq}"),
                            (None, None) => "Log".to_owned(),
                        };
                        html! {
                            <li class={classes!("diag", severity)} data-testid="diagnostic" data-kind={kind.clone()}
                                data-line={d.line.map(|l| l.to_string())} data-seq={d.seq.map(|s| s.to_string())}>
                                <span class="diag-place">{ place }</span>
                                <span class="diag-title">{ title(d.kind) }<span class="diag-kind">{ format!(" ({kind})") }</span></span>
                                <span class="diag-message">{ &d.message }</span>
                            </li>
                        }
                    }) }
                </ol>
                if shown < list.len() {
                    <button type="button" onclick={on_show_all}>{ format!("Show all {} diagnostics", count(list.len() as i64)) }</button>
                }
            </details>
        </section>
    }
}
