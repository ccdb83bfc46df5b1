//! The leaderboard: the ten largest donors by total, with a bar proportional to the top total.
//! Only normal donations that end up not deleted count (system donations and power gifts do
//! not); donations without a donor are pooled as "Anonymous".

use yew::prelude::*;

use crate::format::{count, money};

use super::props::AnalysisProps as Props;

/// How many donors are listed.
const TOP: usize = 10;

/// A bar's width in percent of the top total (whole percent, 0..=100; a positive total shows
/// at least 1%).
fn bar_percent(cents: i64, top: i64) -> i64 {
    if top <= 0 || cents <= 0 {
        return 0;
    }
    let percent = i128::from(cents) * 100 / i128::from(top);
    i64::try_from(percent.clamp(1, 100)).unwrap_or(100)
}

#[function_component(Leaderboard)]
pub fn view(props: &Props) -> Html {
    let analysis = &props.analysis;
    let donors = &analysis.donors;
    let top = donors.first().map_or(0, |d| d.cents);
    let others = donors.len().saturating_sub(TOP);
    html! {
        <section class="card leaderboard" aria-labelledby="leaderboard-title">
            <h2 id="leaderboard-title">{ "Top donors" }</h2>
            if analysis.summary_only {
                <p class="leaderboard-empty" role="status">{ "Totalling donations…" }</p>
            } else if donors.is_empty() {
                <p class="leaderboard-empty">{ "No donations yet." }</p>
            } else {
                <ol class="leaderboard-list">
                    { for donors.iter().take(TOP).map(|d| {
                        let name = analysis.text(d.name);
                        let percent = bar_percent(d.cents, top);
                        let donations = format!("{} donation{}", count(i64::try_from(d.donations).unwrap_or(i64::MAX)),
                                                if d.donations == 1 { "" } else { "s" });
                        html! {
                            <li class="leader">
                                <div class="leader-head">
                                    <span class={classes!("leader-name", name.is_none().then_some("anonymous"))}>
                                        { name.unwrap_or("Anonymous") }
                                    </span>
                                    <span class="leader-total">{ money(d.cents) }</span>
                                </div>
                                <div class="leader-track" aria-hidden="true">
                                    <div class="leader-bar" style={format!("width: {percent}%")}></div>
                                </div>
                                <span class="leader-count">{ donations }</span>
                            </li>
                        }
                    }) }
                </ol>
                if others > 0 {
                    <p class="leaderboard-more">
                        { format!("and {} more donor{}", count(i64::try_from(others).unwrap_or(i64::MAX)),
                                  if others == 1 { "" } else { "s" }) }
                    </p>
                }
            }
            <p class="note">
                { "Totals count normal donations that are not deleted; system donations and power gifts are not \
                   included. Donations without a name are pooled as Anonymous." }
            </p>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_proportional_to_the_top_total() {
        assert_eq!(bar_percent(5000, 5000), 100);
        assert_eq!(bar_percent(2500, 5000), 50);
        // 1/3 of the top rounds down to 33%.
        assert_eq!(bar_percent(1000, 3000), 33);
        // A tiny positive total still shows.
        assert_eq!(bar_percent(1, 1_000_000), 1);
        assert_eq!(bar_percent(0, 5000), 0);
        assert_eq!(bar_percent(100, 0), 0);
        assert_eq!(bar_percent(i64::MAX, i64::MAX), 100);
    }
}
