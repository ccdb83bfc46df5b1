//! The event table: every event of the mech with filters (type, donor, free-text search), 50 rows
//! a page, deleted donations struck through with their deletion history, and a CSV export of
//! what the filters keep.
//!
//! The filtered list is memoised on the filter and the load's identity, so paging through a
//! million-row log does not filter it again. Every text of the log goes into the page as text,
//! never as markup.

use std::collections::BTreeSet;
use std::rc::Rc;

use mechfund_core::{Kind, Timestamp};
use yew::prelude::*;

use crate::analysis::{Analysis, EventRow, Filter, filtered, to_csv};
use crate::browser;
use crate::format::{count, money, when};

use super::props::AnalysisProps as Props;

/// Rows per page.
const PAGE: usize = 50;
/// Up to this many rows the search runs as you type; above, on Enter or leaving the box.
const LIVE_SEARCH_ROWS: usize = 100_000;
/// Donor suggestions offered in the donor box.
const DONOR_SUGGESTIONS: usize = 1000;

/// The page actually shown (clamped) and its row range: `(page, start, end, pages)`.
fn page_bounds(total: usize, page: usize, per: usize) -> (usize, usize, usize, usize) {
    let per = per.max(1);
    let pages = total.div_ceil(per).max(1);
    let page = page.min(pages - 1);
    let start = (page * per).min(total);
    let end = (start + per).min(total);
    (page, start, end, pages)
}

/// What a deletion toggle did to its target: the toggles at even positions delete, the others
/// restore; a toggle replay ignored (missing or undeletable target) is not in the list.
fn toggle_action(toggles: Option<&[u64]>, seq: u64) -> &'static str {
    match toggles.and_then(|t| t.iter().position(|&s| s == seq)) {
        Some(i) if i % 2 == 0 => "deletes",
        Some(_) => "restores",
        None => "ignored; targets",
    }
}

/// A deleted (or restored) event's history: "deleted by #12 (2025-05-28 14:03 UTC, “typo”),
/// restored by #15 (…)". `lookup` gives a deletion's time and reason.
fn toggle_history<'a>(toggles: &[u64], lookup: impl Fn(u64) -> Option<(Timestamp, Option<&'a str>)>) -> String {
    toggles
        .iter()
        .enumerate()
        .map(|(i, &seq)| {
            let verb = if i % 2 == 0 { "deleted" } else { "restored" };
            match lookup(seq) {
                Some((ts, Some(reason))) if !reason.is_empty() => {
                    format!("{verb} by #{seq} ({}, “{reason}”)", when(ts))
                }
                Some((ts, _)) => format!("{verb} by #{seq} ({})", when(ts)),
                None => format!("{verb} by #{seq}"),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The value of the `<select>` or `<input>` an event came from.
fn control_value(e: &Event) -> String {
    if let Some(select) = e.target_dyn_into::<web_sys::HtmlSelectElement>() {
        return select.value();
    }
    e.target_dyn_into::<web_sys::HtmlInputElement>().map(|i| i.value()).unwrap_or_default()
}

/// A non-blank text, trimmed.
fn some_text(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// What a row is, for the confirmation step: "donation #12, $5.00 by ann".
fn describe(analysis: &Analysis, row: &EventRow) -> String {
    let what = match row.kind {
        Kind::DonationAdded => "donation",
        Kind::SystemDonationAdded => "system donation",
        Kind::PowerGiftGranted => "power gift",
        _ => "event",
    };
    let amount = row.amount.map(|a| format!(", {}", money(a))).unwrap_or_default();
    let by = analysis.text(row.text).map(|t| format!(" ({t})")).unwrap_or_default();
    format!("{what} #{}{amount}{by}", row.seq)
}

/// One table row; `manage` offers delete/restore.
fn row_html(analysis: &Analysis, row: &EventRow, manage: Option<&Callback<u64>>) -> Html {
    let ts = row.ts.to_string();
    let text = analysis.text(row.text);
    let toggles = analysis.toggles.get(&row.seq).map(Vec::as_slice);
    let history = toggles.map(|t| toggle_history(t, |seq| analysis.row(seq).map(|d| (d.ts, analysis.text(d.text)))));
    let details = match (&row.kind, row.target) {
        (Kind::DonationDeleted, Some(target)) => {
            let target_toggles = analysis.toggles.get(&target).map(Vec::as_slice);
            html! {
                <>
                    <span class="target">{ format!("{} #{target}", toggle_action(target_toggles, row.seq)) }</span>
                    if let Some(reason) = text {
                        <span class="reason">{ " · reason: " }{ reason }</span>
                    }
                </>
            }
        }
        (Kind::DonationDeleted, None) => html! { <span class="target">{ "no target" }</span> },
        (Kind::DonationAdded, _) => match text {
            Some(name) => html! { <span class="donor">{ name }</span> },
            None => html! { <span class="donor anonymous">{ "Anonymous" }</span> },
        },
        _ => html! { { text.unwrap_or_default() } },
    };
    let amount = row.amount.map(money).unwrap_or_default();
    html! {
        <tr class={classes!(row.deleted.then_some("deleted"))} data-seq={row.seq.to_string()}>
            <td class="num">{ row.seq }</td>
            <td><time datetime={ts.clone()} title={ts}>{ when(row.ts) }</time></td>
            <td class="kind">{ row.kind.name() }</td>
            <td class="details">
                if row.deleted {
                    <del>{ details }</del>{ " " }<span class="badge deleted-badge">{ "deleted" }</span>
                } else {
                    { details }
                }
                if let Some(history) = history {
                    <div class="toggle-history">{ history }</div>
                }
            </td>
            <td class="num">
                if row.deleted && !amount.is_empty() {
                    <del>{ amount }</del>
                } else {
                    { amount }
                }
            </td>
            <td class="num">{ row.members.map(count).unwrap_or_default() }</td>
            <td class="num">{ row.line }</td>
            if let Some(manage) = manage {
                <td>
                    if row.kind.is_deletable() {
                        <button type="button" class="link" data-testid="toggle-deletion" data-seq={row.seq.to_string()}
                                id={format!("toggle-{}", row.seq)}
                                aria-label={format!("{} {}", if row.deleted { "Restore" } else { "Delete" }, describe(analysis, row))}
                                onclick={let manage = manage.clone(); let seq = row.seq; move |_| manage.emit(seq)}>
                            { if row.deleted { "Restore…" } else { "Delete…" } }
                        </button>
                    }
                </td>
            }
        </tr>
    }
}

#[function_component(Events)]
pub fn view(props: &Props) -> Html {
    let analysis = &props.analysis;
    let key = Rc::as_ptr(analysis) as usize;
    let filter = use_state(Filter::default);
    let search = use_state(String::new);
    let page = use_state_eq(|| 0usize);
    let failed = use_state(|| None::<String>);
    let confirming = use_state(|| None::<u64>);
    let on_manage = {
        let confirming = confirming.clone();
        Callback::from(move |seq: u64| confirming.set(Some(seq)))
    };
    let on_close = {
        let confirming = confirming.clone();
        Callback::from(move |()| {
            if let Some(seq) = *confirming {
                browser::focus(&format!("toggle-{seq}"));
            }
            confirming.set(None);
        })
    };
    let manage = props.admin.as_ref().map(|_| &on_manage);

    {
        let page = page.clone();
        use_effect_with(key, move |_| page.set(0));
    }

    let kinds = {
        let analysis = Rc::clone(analysis);
        use_memo(key, move |_| {
            // Insert borrowed names into a set of a handful: no allocation or sort per row.
            let mut names = BTreeSet::new();
            for row in &analysis.rows {
                names.insert(row.kind.name());
            }
            names.into_iter().map(str::to_owned).collect::<Vec<_>>()
        })
    };
    let donors = {
        let analysis = Rc::clone(analysis);
        use_memo(key, move |_| {
            analysis
                .donors
                .iter()
                .filter_map(|d| analysis.text(d.name).map(str::to_owned))
                .take(DONOR_SUGGESTIONS)
                .collect::<Vec<_>>()
        })
    };
    let shown = {
        let analysis = Rc::clone(analysis);
        use_memo((key, (*filter).clone()), move |(_, filter)| {
            // `None`: every row (no million-entry index list for the unfiltered table).
            if *filter == Filter::default() {
                return None;
            }
            Some(
                analysis
                    .rows
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| filter.matches(&analysis, r))
                    .map(|(i, _)| i)
                    .collect::<Vec<usize>>(),
            )
        })
    };

    let set_filter = {
        let filter = filter.clone();
        let page = page.clone();
        move |change: &dyn Fn(&mut Filter)| {
            let mut next = (*filter).clone();
            change(&mut next);
            if next != *filter {
                filter.set(next);
                page.set(0);
            }
        }
    };
    let on_kind = {
        let set_filter = set_filter.clone();
        Callback::from(move |e: Event| {
            let value = control_value(&e);
            set_filter(&|f: &mut Filter| f.kind = some_text(&value));
        })
    };
    let on_donor = {
        let set_filter = set_filter.clone();
        Callback::from(move |e: Event| {
            let value = control_value(&e);
            set_filter(&|f: &mut Filter| f.donor = some_text(&value));
        })
    };
    let apply_search = {
        let set_filter = set_filter.clone();
        move |value: String| set_filter(&|f: &mut Filter| f.search = value.trim().to_owned())
    };
    let on_search_input = {
        let search = search.clone();
        let apply_search = apply_search.clone();
        let live = analysis.rows.len() <= LIVE_SEARCH_ROWS;
        Callback::from(move |e: InputEvent| {
            let value = e.target_dyn_into::<web_sys::HtmlInputElement>().map(|i| i.value()).unwrap_or_default();
            search.set(value.clone());
            if live {
                apply_search(value);
            }
        })
    };
    let on_search_change = {
        let apply_search = apply_search.clone();
        Callback::from(move |e: Event| apply_search(control_value(&e)))
    };
    let on_submit = {
        let search = search.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            apply_search((*search).clone());
        })
    };
    let on_clear = {
        let filter = filter.clone();
        let search = search.clone();
        let page = page.clone();
        Callback::from(move |_: MouseEvent| {
            filter.set(Filter::default());
            search.set(String::new());
            page.set(0);
        })
    };

    let total = shown.as_ref().as_ref().map_or(analysis.rows.len(), Vec::len);
    let row_at = |i: usize| match shown.as_ref() {
        None => analysis.rows.get(i),
        Some(indices) => indices.get(i).and_then(|&r| analysis.rows.get(r)),
    };
    let (current, start, end, pages) = page_bounds(total, *page, PAGE);
    let on_prev = {
        let page = page.clone();
        Callback::from(move |_: MouseEvent| page.set(current.saturating_sub(1)))
    };
    let on_next = {
        let page = page.clone();
        Callback::from(move |_: MouseEvent| page.set((current + 1).min(pages - 1)))
    };
    let on_download = {
        let analysis = Rc::clone(analysis);
        let filter = (*filter).clone();
        let failed = failed.clone();
        let name = if props.mech.is_empty() { "events.csv".to_owned() } else { format!("{}-events.csv", props.mech) };
        Callback::from(move |_: MouseEvent| {
            // The same rows as the table (one more pass, on demand only).
            let csv = to_csv(&analysis, &filtered(&analysis, &filter));
            match browser::download(&name, "text/csv", &csv) {
                Ok(()) => failed.set(None),
                Err(e) => failed.set(Some(format!("Could not download the CSV: {}", browser::describe(&e)))),
            }
        })
    };

    let as_count = |n: usize| count(i64::try_from(n).unwrap_or(i64::MAX));
    let status = if total == 0 {
        "No events match.".to_owned()
    } else {
        format!("Rows {}–{} of {}", as_count(start + 1), as_count(end), as_count(total))
    };
    let filtered_out = total < analysis.rows.len();
    let caption = if props.mech.is_empty() { "Events".to_owned() } else { format!("Events of mech {}", props.mech) };
    let caption = if filtered_out {
        format!("{caption} ({} of {} match the filters)", as_count(total), as_count(analysis.rows.len()))
    } else {
        format!("{caption} ({})", as_count(total))
    };

    if analysis.summary_only {
        // The summary is on screen; the worker is still building the table's rows.
        return html! {
            <section class="card events" aria-labelledby="events-title" aria-busy="true">
                <h2 id="events-title">{ "Events" }</h2>
                <p class="events-status" role="status" aria-live="polite">{ "Loading the events…" }</p>
            </section>
        };
    }
    html! {
        <section class="card events" aria-labelledby="events-title">
            <h2 id="events-title">{ "Events" }</h2>
            <form class="event-filters toolbar" role="search" aria-label="Filter events" onsubmit={on_submit}>
                <div class="field">
                    <label for="events-type">{ "Type" }</label>
                    <select id="events-type" onchange={on_kind}>
                        <option value="" selected={filter.kind.is_none()}>{ "All types" }</option>
                        { for kinds.iter().map(|k| html! {
                            <option value={k.clone()} selected={filter.kind.as_deref() == Some(k.as_str())}>{ k }</option>
                        }) }
                    </select>
                </div>
                <div class="field">
                    <label for="events-donor">{ "Donor" }</label>
                    <input id="events-donor" type="text" list="events-donors" autocomplete="off"
                           placeholder="Any donor" value={filter.donor.clone().unwrap_or_default()} onchange={on_donor} />
                    <datalist id="events-donors">
                        { for donors.iter().map(|d| html! { <option value={d.clone()} /> }) }
                    </datalist>
                </div>
                <div class="field">
                    <label for="events-search">{ "Search" }</label>
                    <input id="events-search" type="search" placeholder="Name, type, amount, seq, time"
                           value={(*search).clone()} oninput={on_search_input} onchange={on_search_change}
                           aria-describedby="events-search-hint" />
                    <span id="events-search-hint" class="hint">
                        { if analysis.rows.len() <= LIVE_SEARCH_ROWS { "Filters as you type." } else { "Press Enter to search." } }
                    </span>
                </div>
                <div class="field actions">
                    <button type="button" onclick={on_clear}
                            disabled={*filter == Filter::default() && search.is_empty()}>{ "Clear filters" }</button>
                    <button type="button" onclick={on_download} disabled={total == 0}>{ "Download CSV" }</button>
                </div>
            </form>
            if let Some(message) = &*failed {
                <p class="error" role="alert">{ message }</p>
            }
            if let (Some(admin), Some(row)) = (&props.admin, confirming.and_then(|seq| analysis.row(seq))) {
                <super::toggle::ToggleForm admin={admin.clone()} seq={row.seq} deleted={row.deleted}
                    label={describe(analysis, row)} on_close={on_close.clone()} />
            }
            <p class="events-status" role="status" aria-live="polite">{ status.clone() }</p>
            <div class="table-scroll" tabindex="0" role="region" aria-label="Events table (scrolls sideways)">
                <table class="events-table">
                    <caption>{ caption }</caption>
                    <thead>
                        <tr>
                            <th scope="col">{ "Seq" }</th>
                            <th scope="col">{ "Time (UTC)" }</th>
                            <th scope="col">{ "Type" }</th>
                            <th scope="col">{ "Donor / details" }</th>
                            <th scope="col">{ "Amount" }</th>
                            <th scope="col">{ "Members" }</th>
                            <th scope="col">{ "Line" }</th>
                            if manage.is_some() {
                                <th scope="col">{ "Manage" }</th>
                            }
                        </tr>
                    </thead>
                    <tbody>
                        { for (start..end).filter_map(row_at).map(|r| row_html(analysis, r, manage)) }
                    </tbody>
                </table>
            </div>
            <nav class="pager" aria-label="Event pages">
                <button type="button" onclick={on_prev} disabled={current == 0}>{ "← Previous" }</button>
                <span class="pager-status">{ format!("{status} · page {} of {}", as_count(current + 1), as_count(pages)) }</span>
                <button type="button" onclick={on_next} disabled={current + 1 >= pages}>{ "Next →" }</button>
            </nav>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_hold_fifty_rows_and_clamp() {
        assert_eq!(page_bounds(0, 0, 50), (0, 0, 0, 1));
        assert_eq!(page_bounds(120, 0, 50), (0, 0, 50, 3));
        assert_eq!(page_bounds(120, 2, 50), (2, 100, 120, 3));
        // A page past the end (the filter shrank the list) shows the last one.
        assert_eq!(page_bounds(120, 9, 50), (2, 100, 120, 3));
        assert_eq!(page_bounds(100, 1, 50), (1, 50, 100, 2));
    }

    #[test]
    fn toggles_alternate_delete_and_restore() {
        let toggles = [12, 15, 20];
        assert_eq!(toggle_action(Some(&toggles), 12), "deletes");
        assert_eq!(toggle_action(Some(&toggles), 15), "restores");
        assert_eq!(toggle_action(Some(&toggles), 20), "deletes");
        assert_eq!(toggle_action(Some(&toggles), 99), "ignored; targets");
        assert_eq!(toggle_action(None, 12), "ignored; targets");
    }

    #[test]
    fn history_names_each_toggle_with_its_time_and_reason() {
        let at = |text: &str| Timestamp::parse(text).expect("valid");
        let lookup = |seq: u64| match seq {
            12 => Some((at("2025-05-28T14:03:59Z"), Some("typo"))),
            15 => Some((at("2025-05-29T09:00:00+02:00"), None)),
            _ => None,
        };
        assert_eq!(
            toggle_history(&[12, 15, 40], lookup),
            "deleted by #12 (2025-05-28 14:03 UTC, “typo”), restored by #15 (2025-05-29 07:00 UTC), deleted by #40"
        );
        assert_eq!(toggle_history(&[], lookup), "");
    }

    #[test]
    fn blank_controls_mean_no_filter() {
        assert_eq!(some_text("  "), None);
        assert_eq!(some_text(" Ann "), Some("Ann".to_owned()));
    }
}
