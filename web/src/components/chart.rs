//! The history chart: evolution, goal and power (money, left axis) and the level (a step line on
//! a 1..11 right axis) over time as an inline SVG, with level-up markers, a tooltip that follows
//! the pointer or the arrow keys, a legend, and a text summary plus a level-up table for people
//! who cannot see it.
//!
//! The SVG's `viewBox` is as wide as its container (measured on mount and on resize), so text
//! stays at its real size and the page never scrolls sideways; geometry is plain Rust, tested
//! natively.

use std::rc::Rc;

use mechfund_core::Timestamp;
use mechfund_core::replay::TimelinePoint;
use mechfund_core::rules::MAX_LEVEL;
use mechfund_core::state::LevelUp;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use yew::prelude::*;

use crate::format::{count, money, when};

use super::props::AnalysisProps as Props;

/// The SVG's height in its own units (pixels, as the width follows the container).
const HEIGHT: f64 = 300.0;
/// The width used before the container is measured.
const DEFAULT_WIDTH: f64 = 720.0;
const MIN_WIDTH: f64 = 280.0;
const MAX_WIDTH: f64 = 1600.0;
/// Room for the money labels (left), level labels (right), and dates (bottom).
const LEFT: f64 = 68.0;
const RIGHT: f64 = 34.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 30.0;

const MINUTE: i64 = 60_000_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// Tick spacings on the time axis under a month, smallest first; longer spans tick on the first
/// of a month (see [`month_ticks`]).
const TIME_STEPS: [i64; 15] = [
    MINUTE,
    2 * MINUTE,
    5 * MINUTE,
    10 * MINUTE,
    15 * MINUTE,
    30 * MINUTE,
    HOUR,
    2 * HOUR,
    3 * HOUR,
    6 * HOUR,
    12 * HOUR,
    DAY,
    2 * DAY,
    7 * DAY,
    14 * DAY,
];
/// An average month (30.436875 days), to count months in a span.
const MONTH: i64 = 2_629_746_000_000;
/// Month spacings (in months) tried before whole years.
const MONTH_STEPS: [i64; 5] = [1, 2, 3, 6, 12];

/// Inline so a stylesheet rule for the chart's `svg` cannot stretch the legend's swatches.
const SWATCH_STYLE: &str =
    "display: inline-block; width: 22px; height: 10px; margin-right: 0.3rem; vertical-align: middle;";

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// The points' times in microseconds, made non-decreasing (a log whose clock steps back is
/// drawn at the latest time seen). Unreadable times take their neighbour's; if every point has
/// the same time they are spread one second apart so the chart still has a width.
fn times(points: &[TimelinePoint]) -> Vec<i64> {
    let parsed: Vec<Option<i64>> =
        points.iter().map(|p| Timestamp::parse(p.ts.as_str()).ok().map(Timestamp::micros)).collect();
    let first = parsed.iter().flatten().next().copied().unwrap_or(0);
    let mut last = first;
    let mut out: Vec<i64> = parsed
        .iter()
        .map(|t| {
            last = last.max(t.unwrap_or(last));
            last
        })
        .collect();
    if out.len() > 1 && out.first() == out.last() {
        for (i, t) in out.iter_mut().enumerate() {
            *t = first.saturating_add(i64::try_from(i).unwrap_or(i64::MAX).saturating_mul(1_000_000));
        }
    }
    out
}

/// The smallest of 1, 2, 5 or 10 times a power of ten that is at least `raw`.
fn nice(raw: i64) -> i64 {
    let mut magnitude: i64 = 1;
    while magnitude.saturating_mul(10) <= raw {
        magnitude = magnitude.saturating_mul(10);
    }
    [1, 2, 5, 10].iter().map(|m| m * magnitude).find(|&step| step >= raw).unwrap_or(magnitude.saturating_mul(10))
}

/// `a / b` rounded up, for `a >= 0` and `b > 0` (`i64::div_ceil` is not stable).
fn ceil_div(a: i64, b: i64) -> i64 {
    a / b + i64::from(a % b != 0)
}

/// Money ticks from zero to at least `max` cents, about `target` intervals, in whole dollars.
fn money_ticks(max: i64, target: i64) -> Vec<i64> {
    let max = max.max(100);
    let target = target.max(1);
    let step = nice(ceil_div(max, target)).max(100);
    let top = ceil_div(max, step);
    (0..=top).map(|i| i * step).collect()
}

/// A money tick's label: whole dollars without cents ("$1,000").
fn money_tick(cents: i64) -> String {
    if cents % 100 == 0 { format!("${}", count(cents / 100)) } else { money(cents) }
}

/// Time ticks between `t0` and `t1` (microseconds) at a round spacing, at most about `target`
/// of them; returns the spacing too (it decides the labels; a month counts as 30 days).
fn time_ticks(t0: i64, t1: i64, target: i64) -> (Vec<i64>, i64) {
    let span = (t1 - t0).max(1);
    let target = target.max(1);
    if let Some(step) = TIME_STEPS.iter().copied().find(|&s| span / s <= target) {
        let first = t0.div_euclid(step) * step + if t0.rem_euclid(step) == 0 { 0 } else { step };
        let ticks = std::iter::successors(Some(first), |&t| t.checked_add(step)).take_while(|&t| t <= t1).collect();
        return (ticks, step);
    }
    let months = ceil_div(span, MONTH);
    let every = MONTH_STEPS
        .iter()
        .copied()
        .find(|&m| ceil_div(months, m) <= target)
        .unwrap_or_else(|| 12 * ceil_div(ceil_div(months, 12), target));
    (month_ticks(t0, t1, every), every * 30 * DAY)
}

/// The first instants of months between `t0` and `t1`, every `every` months counted from year 0
/// (so yearly ticks fall on January 1st).
fn month_ticks(t0: i64, t1: i64, every: i64) -> Vec<i64> {
    let text = Timestamp(t0).to_string();
    let year: i64 = text.get(0..4).and_then(|y| y.parse().ok()).unwrap_or(1970);
    let month: i64 = text.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(1);
    let every = every.max(1);
    let mut index = year * 12 + month - 1;
    index -= index.rem_euclid(every);
    let mut ticks = Vec::new();
    for _ in 0..1000 {
        let (y, m) = (index.div_euclid(12), index.rem_euclid(12) + 1);
        let Ok(t) = Timestamp::parse(&format!("{y:04}-{m:02}-01T00:00:00+00:00")) else { break };
        if t.micros() > t1 {
            break;
        }
        if t.micros() >= t0 {
            ticks.push(t.micros());
        }
        index += every;
    }
    ticks
}

/// A time tick's label, as short as the spacing allows: "2025" (yearly), "May 2025" (monthly),
/// "May 28" (daily, or midnight), "14:00".
fn time_label(t: i64, step: i64) -> String {
    let text = Timestamp(t).to_string();
    let part = |a: usize, b: usize| text.get(a..b).unwrap_or_default();
    let month = part(5, 7).parse::<usize>().ok().and_then(|m| MONTHS.get(m.wrapping_sub(1))).copied().unwrap_or("");
    let day = part(8, 10).trim_start_matches('0');
    let hm = part(11, 16);
    if step >= 360 * DAY {
        part(0, 4).to_owned()
    } else if step >= 30 * DAY {
        format!("{month} {}", part(0, 4))
    } else if step >= DAY || hm == "00:00" {
        format!("{month} {day}")
    } else {
        hm.to_owned()
    }
}

/// The index of the value of `xs` (sorted ascending) nearest to `x`; ties go left.
fn nearest(xs: &[f64], x: f64) -> Option<usize> {
    if xs.is_empty() {
        return None;
    }
    let i = xs.partition_point(|&v| v < x);
    if i == 0 {
        return Some(0);
    }
    if i == xs.len() {
        return Some(xs.len() - 1);
    }
    Some(if x - xs[i - 1] <= xs[i] - x { i - 1 } else { i })
}

/// An SVG path that holds each value until the next point ("step after").
fn step_path(points: &[(f64, f64)]) -> String {
    let mut out = String::new();
    for (i, (x, y)) in points.iter().enumerate() {
        if i == 0 {
            out.push_str(&format!("M{x:.1},{y:.1}"));
        } else {
            out.push_str(&format!("H{x:.1}V{y:.1}"));
        }
    }
    out
}

/// An SVG path through the points.
fn line_path(points: &[(f64, f64)]) -> String {
    let mut out = String::new();
    for (i, (x, y)) in points.iter().enumerate() {
        out.push_str(&format!("{}{x:.1},{y:.1}", if i == 0 { 'M' } else { 'L' }));
    }
    out
}

/// Everything drawn that does not depend on the highlighted point.
#[derive(Debug, PartialEq)]
struct Plot {
    width: f64,
    /// Each point's x.
    xs: Vec<f64>,
    /// The money axis' top, in cents.
    y_max: i64,
    evo: String,
    goal: String,
    power: String,
    level: String,
    /// (y, label)
    y_ticks: Vec<(f64, String)>,
    /// (x, label)
    x_ticks: Vec<(f64, String)>,
    /// (x, title)
    markers: Vec<(f64, String)>,
}

impl Plot {
    /// The y of an amount of cents.
    #[allow(clippy::cast_precision_loss, reason = "drawing")]
    fn y(&self, cents: i64) -> f64 {
        let plot = HEIGHT - TOP - BOTTOM;
        TOP + plot * (1.0 - cents.clamp(0, self.y_max) as f64 / self.y_max.max(1) as f64)
    }

    /// The y of a level on the right axis (1 at the bottom, 11 at the top).
    fn y_level(level: u8) -> f64 {
        let plot = HEIGHT - TOP - BOTTOM;
        let steps = f64::from(MAX_LEVEL - 1);
        TOP + plot * (1.0 - f64::from(level.clamp(1, MAX_LEVEL) - 1) / steps)
    }
}

/// Lays the chart out for a viewBox `width` wide; `None` under two points.
#[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, reason = "drawing")]
fn plot(points: &[TimelinePoint], level_ups: &[LevelUp], width: f64) -> Option<Plot> {
    if points.len() < 2 {
        return None;
    }
    let ts = times(points);
    let (t0, t1) = (*ts.first()?, *ts.last()?);
    let span = (t1 - t0).max(1) as f64;
    let plot_width = (width - LEFT - RIGHT).max(1.0);
    let x_of = |t: i64| LEFT + (t.clamp(t0, t1) - t0) as f64 / span * plot_width;
    let xs: Vec<f64> = ts.iter().map(|&t| x_of(t)).collect();
    let top = points.iter().map(|p| p.evo_acc.max(p.goal_requirement).max(p.power_acc)).max().unwrap_or(0);
    let y_ticks_cents = money_ticks(top, 4);
    let y_max = y_ticks_cents.last().copied().unwrap_or(100).max(1);
    let mut shell = Plot {
        width,
        xs,
        y_max,
        evo: String::new(),
        goal: String::new(),
        power: String::new(),
        level: String::new(),
        y_ticks: Vec::new(),
        x_ticks: Vec::new(),
        markers: Vec::new(),
    };
    let series = |value: &dyn Fn(&TimelinePoint) -> f64| -> Vec<(f64, f64)> {
        shell.xs.iter().zip(points).map(|(&x, p)| (x, value(p))).collect()
    };
    let evo = step_path(&series(&|p| shell.y(p.evo_acc)));
    let goal = step_path(&series(&|p| shell.y(p.goal_requirement)));
    let power = line_path(&series(&|p| shell.y(p.power_acc)));
    let level = step_path(&series(&|p| Plot::y_level(p.level)));
    let y_ticks = y_ticks_cents.iter().map(|&c| (shell.y(c), money_tick(c))).collect();
    let (x_ticks, step) = time_ticks(t0, t1, ((plot_width / 90.0) as i64).max(2));
    let x_ticks = x_ticks.into_iter().map(|t| (x_of(t), time_label(t, step))).collect();
    let markers = level_ups
        .iter()
        .filter_map(|l| {
            let t = Timestamp::parse(&l.ts).ok()?.micros();
            Some((x_of(t), level_up_title(l)))
        })
        .collect();
    shell.evo = evo;
    shell.goal = goal;
    shell.power = power;
    shell.level = level;
    shell.y_ticks = y_ticks;
    shell.x_ticks = x_ticks;
    shell.markers = markers;
    Some(shell)
}

/// What a level-up marker's tooltip says.
fn level_up_title(l: &LevelUp) -> String {
    let at = Timestamp::parse(&l.ts).map_or_else(|_| l.ts.clone(), when);
    let exact = if l.exact_hit { " (exact hit: bonus power)" } else { "" };
    let next = if l.new_goal > 0 { format!(", next goal {}", money(l.new_goal)) } else { String::new() };
    format!(
        "Level {} → {} at {at} (event #{}): reached {}{next}, {} members{exact}",
        l.from_level,
        l.to_level,
        l.seq,
        money(l.old_goal),
        count(l.member_count)
    )
}

/// A point's time for people ("2025-05-28 14:03 UTC"), or its raw text.
fn point_time(p: &TimelinePoint) -> String {
    Timestamp::parse(p.ts.as_str()).map_or_else(|_| p.ts.to_string(), when)
}

/// "evolution $x of $y", or that the top level has no goal.
fn evolution(p: &TimelinePoint) -> String {
    if p.level >= MAX_LEVEL {
        "max level (no goal)".to_owned()
    } else {
        format!("evolution {} of {}", money(p.evo_acc), money(p.goal_requirement))
    }
}

/// One sentence about a point, for the live region.
fn describe_point(p: &TimelinePoint) -> String {
    format!("{}: level {}, {}, power {}.", point_time(p), p.level, evolution(p), money(p.power_acc))
}

/// The chart's one-line summary (its accessible name).
fn summary(points: &[TimelinePoint], level_ups: usize) -> String {
    match (points.first(), points.last()) {
        (Some(first), Some(last)) => format!(
            "History from {} to {}: {} level-up{}, reaching level {}; {}, power {}.",
            point_time(first),
            point_time(last),
            level_ups,
            if level_ups == 1 { "" } else { "s" },
            last.level,
            evolution(last),
            money(last.power_acc)
        ),
        _ => "No history.".to_owned(),
    }
}

/// Where the tooltip goes for a point `percent` of the way across: on the side with more room,
/// never wider than that room (so it cannot push the page sideways on a phone).
fn tooltip_style(percent: f64) -> String {
    let percent = percent.clamp(0.0, 100.0);
    let (side, at, room) =
        if percent > 50.0 { ("right", 100.0 - percent, percent) } else { ("left", percent, 100.0 - percent) };
    format!(
        "position: absolute; top: 0.25rem; {side}: calc({at:.1}% + 8px); max-width: calc({room:.1}% - 12px); \
         white-space: normal;"
    )
}

/// An SVG coordinate with one decimal.
fn num(v: impl std::borrow::Borrow<f64>) -> String {
    format!("{:.1}", v.borrow())
}

/// The element's left edge and width on screen (`getBoundingClientRect`, called dynamically so
/// no extra web-sys feature is needed).
fn screen_box(target: &JsValue) -> Option<(f64, f64)> {
    let function: js_sys::Function =
        js_sys::Reflect::get(target, &JsValue::from_str("getBoundingClientRect")).ok()?.dyn_into().ok()?;
    let rect = function.call0(target).ok()?;
    let left = js_sys::Reflect::get(&rect, &JsValue::from_str("left")).ok()?.as_f64()?;
    let width = js_sys::Reflect::get(&rect, &JsValue::from_str("width")).ok()?.as_f64()?;
    (width > 0.0).then_some((left, width))
}

/// The highlighted point, and whether the keyboard chose it (then it is announced).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Active {
    index: Option<usize>,
    keyboard: bool,
}

/// The next highlighted index for a key, or `None` when the key is not the chart's.
fn key_move(key: &str, current: Option<usize>, len: usize) -> Option<Option<usize>> {
    let last = len.checked_sub(1)?;
    Some(match key {
        "ArrowLeft" => Some(current.map_or(last, |i| i.saturating_sub(1))),
        "ArrowRight" => Some(current.map_or(0, |i| (i + 1).min(last))),
        "Home" => Some(0),
        "End" => Some(last),
        "Escape" => None,
        _ => return None,
    })
}

#[function_component(Chart)]
pub fn view(props: &Props) -> Html {
    let analysis = &props.analysis;
    let points = &analysis.chart;
    let wrap = use_node_ref();
    let width = use_state_eq(|| DEFAULT_WIDTH);
    let active = use_state_eq(Active::default);
    let drawable = points.len() >= 2;

    {
        let wrap = wrap.clone();
        let width = width.clone();
        use_effect_with(drawable, move |&drawable| {
            let measure = move || {
                if let Some(element) = wrap.cast::<web_sys::Element>() {
                    let w = f64::from(element.client_width());
                    if w > 0.0 {
                        width.set(w.clamp(MIN_WIDTH, MAX_WIDTH).round());
                    }
                }
            };
            let mut listener: Option<(web_sys::Window, Closure<dyn FnMut()>)> = None;
            if drawable {
                measure();
                if let Some(window) = web_sys::window() {
                    let closure = Closure::<dyn FnMut()>::new(measure);
                    if window.add_event_listener_with_callback("resize", closure.as_ref().unchecked_ref()).is_ok() {
                        listener = Some((window, closure));
                    }
                }
            }
            move || {
                if let Some((window, closure)) = listener {
                    let _ = window.remove_event_listener_with_callback("resize", closure.as_ref().unchecked_ref());
                }
            }
        });
    }
    {
        let active = active.clone();
        use_effect_with(Rc::as_ptr(analysis) as usize, move |_| active.set(Active::default()));
    }

    let layout = {
        let analysis = Rc::clone(analysis);
        use_memo((Rc::as_ptr(&analysis) as usize, (*width).to_bits()), move |&(_, w)| {
            plot(&analysis.chart, &analysis.result.level_ups, f64::from_bits(w))
        })
    };

    let level_ups = &analysis.result.level_ups;
    let heading = html! { <h2 id="chart-title">{ "History" }</h2> };
    if analysis.summary_only {
        // The summary is on screen; the worker is still building the history.
        return html! {
            <section class="card chart" aria-labelledby="chart-title" aria-busy="true">
                { heading }
                <p class="chart-empty" role="status">{ "Drawing the history…" }</p>
            </section>
        };
    }
    let Some(layout) = layout.as_ref() else {
        return html! {
            <section class="card chart" aria-labelledby="chart-title">
                { heading }
                <p class="chart-empty">
                    { "Not enough history to draw yet: the chart needs at least two events that move the mech's clock \
                       (donations, gifts or member-count samples)." }
                </p>
            </section>
        };
    };

    let on_pointer = {
        let active = active.clone();
        let xs = layout.xs.clone();
        let view_width = layout.width;
        Callback::from(move |e: PointerEvent| {
            let Some(target) = e.current_target() else { return };
            let Some((left, screen_width)) = screen_box(target.as_ref()) else { return };
            let x = (f64::from(e.client_x()) - left) / screen_width * view_width;
            active.set(Active { index: nearest(&xs, x), keyboard: false });
        })
    };
    let on_leave = {
        let active = active.clone();
        Callback::from(move |_: PointerEvent| {
            if !active.keyboard {
                active.set(Active::default());
            }
        })
    };
    let on_key = {
        let active = active.clone();
        let len = points.len();
        Callback::from(move |e: KeyboardEvent| {
            if let Some(index) = key_move(&e.key(), active.index, len) {
                e.prevent_default();
                active.set(Active { index, keyboard: true });
            }
        })
    };
    let on_blur = {
        let active = active.clone();
        Callback::from(move |_: FocusEvent| active.set(Active::default()))
    };

    let highlighted = active.index.and_then(|i| Some((i, points.get(i)?, *layout.xs.get(i)?)));
    let bottom = HEIGHT - BOTTOM;
    let right = layout.width - RIGHT;
    let label = summary(points, level_ups.len());
    let view_box = format!("0 0 {} {HEIGHT}", layout.width);

    let cursor = highlighted.map(|(_, p, x)| {
        html! {
            <g class="chart-cursor" aria-hidden="true">
                <line x1={num(x)} x2={num(x)} y1={num(TOP)} y2={num(bottom)}
                      stroke="currentColor" stroke-opacity="0.4" stroke-dasharray="3 3" />
                <circle class="cursor-dot series-goal" cx={num(x)} cy={num(layout.y(p.goal_requirement))} r="3.5" fill="#d9822b" />
                <circle class="cursor-dot series-power" cx={num(x)} cy={num(layout.y(p.power_acc))} r="3.5" fill="#2f9e44" />
                <circle class="cursor-dot series-evo" cx={num(x)} cy={num(layout.y(p.evo_acc))} r="4" fill="#3b6fd8" />
                <circle class="cursor-dot series-level" cx={num(x)} cy={num(Plot::y_level(p.level))} r="3" fill="#8e5bd0" />
            </g>
        }
    });
    let tooltip = highlighted.map(|(_, p, x)| {
        let percent = x / layout.width * 100.0;
        let style = tooltip_style(percent);
        html! {
            <div class="chart-tooltip tooltip" aria-hidden="true" style={style}>
                <div class="tooltip-time">{ point_time(p) }</div>
                <div>{ format!("Level {}", p.level) }</div>
                <div>
                    <span class="tooltip-key">{ "Evolution " }</span>
                    if p.level >= MAX_LEVEL {
                        { "max level" }
                    } else {
                        { format!("{} / {}", money(p.evo_acc), money(p.goal_requirement)) }
                    }
                </div>
                <div><span class="tooltip-key">{ "Power " }</span>{ money(p.power_acc) }</div>
                <div class="tooltip-extra">{ format!("Donated {}", money(p.cumulative_donations_cents)) }</div>
                <div class="tooltip-extra">{ format!("{} members · event #{}", count(p.member_count), p.seq) }</div>
            </div>
        }
    });
    let announcement = match highlighted {
        Some((i, p, _)) if active.keyboard => format!("Point {} of {}. {}", i + 1, points.len(), describe_point(p)),
        _ => String::new(),
    };
    let legend_item = |class: &'static str, colour: &'static str, dash: Option<&'static str>, name: &'static str| {
        html! {
            <li>
                <svg class="legend-swatch" width="22" height="10" viewBox="0 0 22 10" aria-hidden="true" focusable="false"
                     style={SWATCH_STYLE}>
                    <line class={class} x1="1" y1="5" x2="21" y2="5" stroke={colour} stroke-width="3" stroke-dasharray={dash} />
                </svg>
                { name }
            </li>
        }
    };

    html! {
        <section class="card chart" aria-labelledby="chart-title">
            { heading }
            <ul class="chart-legend legend">
                { legend_item("series-evo", "#3b6fd8", None, "Evolution") }
                { legend_item("series-goal", "#d9822b", Some("6 3"), "Goal") }
                { legend_item("series-power", "#2f9e44", None, "Power") }
                { legend_item("series-level", "#8e5bd0", Some("2 2"), "Level (right axis)") }
                <li>
                    <svg class="legend-swatch" width="22" height="10" viewBox="0 0 22 10" aria-hidden="true" focusable="false"
                     style={SWATCH_STYLE}>
                        <line class="levelup-marker" x1="11" y1="0" x2="11" y2="10" stroke="#c92a2a" stroke-width="2" />
                    </svg>
                    { "Level-up" }
                </li>
            </ul>
            <div class="chart-wrap" ref={wrap} style="position: relative;">
                <svg class="chart-svg" viewBox={view_box} preserveAspectRatio="xMidYMid meet"
                     width="100%" style="display: block; width: 100%; height: auto; max-width: 100%; touch-action: pan-y;"
                     role="img" aria-label={format!("History chart. {label}")} aria-describedby="chart-description"
                     tabindex="0" focusable="true"
                     onpointermove={on_pointer.clone()} onpointerdown={on_pointer} onpointerleave={on_leave}
                     onkeydown={on_key} onblur={on_blur}>
                    <g class="chart-grid grid" aria-hidden="true">
                        { for layout.y_ticks.iter().map(|(y, _)| html! {
                            <line x1={num(LEFT)} x2={num(right)} y1={num(y)} y2={num(y)}
                                  stroke="currentColor" stroke-opacity="0.12" />
                        }) }
                    </g>
                    <g class="chart-axis axis-money" font-size="11" fill="currentColor" text-anchor="end" aria-hidden="true">
                        { for layout.y_ticks.iter().map(|(y, text)| html! {
                            <text x={num(LEFT - 6.0)} y={num(y + 4.0)}>{ text }</text>
                        }) }
                    </g>
                    <g class="chart-axis axis-level" font-size="11" fill="currentColor" text-anchor="start" aria-hidden="true">
                        { for (1..=MAX_LEVEL).step_by(2).map(|level| html! {
                            <text x={num(right + 5.0)} y={num(Plot::y_level(level) + 4.0)}>{ format!("L{level}") }</text>
                        }) }
                    </g>
                    <g class="chart-axis axis-time" font-size="11" fill="currentColor" text-anchor="middle" aria-hidden="true">
                        <line class="axis" x1={num(LEFT)} x2={num(right)} y1={num(bottom)} y2={num(bottom)}
                              stroke="currentColor" stroke-opacity="0.4" />
                        { for layout.x_ticks.iter().map(|(x, text)| html! {
                            <>
                                <line x1={num(x)} x2={num(x)} y1={num(bottom)} y2={num(bottom + 4.0)}
                                      stroke="currentColor" stroke-opacity="0.4" />
                                <text x={num(x)} y={num(bottom + 17.0)}>{ text }</text>
                            </>
                        }) }
                    </g>
                    <g class="levelup-markers">
                        { for layout.markers.iter().map(|(x, title)| html! {
                            <g class="levelup-marker" stroke="#c92a2a" fill="#c92a2a">
                                <title>{ title }</title>
                                <line x1={num(x)} x2={num(x)} y1={num(TOP)} y2={num(bottom)}
                                      stroke-width="1.5" stroke-dasharray="4 3" />
                                <circle cx={num(x)} cy={num(TOP)} r="4" />
                            </g>
                        }) }
                    </g>
                    <g class="chart-series" fill="none" stroke-width="2" stroke-linejoin="round" aria-hidden="true">
                        <path class="series-level" d={layout.level.clone()} stroke="#8e5bd0" stroke-width="1.5" stroke-dasharray="2 2" />
                        <path class="series-goal" d={layout.goal.clone()} stroke="#d9822b" stroke-dasharray="6 3" />
                        <path class="series-power" d={layout.power.clone()} stroke="#2f9e44" />
                        <path class="series-evo" d={layout.evo.clone()} stroke="#3b6fd8" />
                    </g>
                    { for cursor }
                </svg>
                { for tooltip }
            </div>
            <p class="chart-hint">{ "Hover, or focus the chart and use the arrow keys (Home, End), to read a point." }</p>
            <p class="sr-only" aria-live="polite">{ announcement }</p>
            <p id="chart-description" class="sr-only">
                { format!(
                    "{label} Money on the left axis, level 1 to {MAX_LEVEL} on the right axis; {} points drawn. \
                     The level-up table below lists each level change.",
                    count(i64::try_from(points.len()).unwrap_or(i64::MAX))
                ) }
            </p>
            <details class="chart-data">
                <summary>{ format!("Level-ups ({})", level_ups.len()) }</summary>
                if level_ups.is_empty() {
                    <p>{ "No level-ups yet." }</p>
                } else {
                    <div class="table-scroll" tabindex="0" role="region" aria-label="Level-ups table">
                        <table>
                            <caption>{ "Level-ups derived by replay" }</caption>
                            <thead>
                                <tr>
                                    <th scope="col">{ "Time" }</th>
                                    <th scope="col">{ "Level" }</th>
                                    <th scope="col">{ "Event" }</th>
                                    <th scope="col">{ "Goal reached" }</th>
                                    <th scope="col">{ "Next goal" }</th>
                                    <th scope="col">{ "Members" }</th>
                                    <th scope="col">{ "Exact hit" }</th>
                                </tr>
                            </thead>
                            <tbody>
                                { for level_ups.iter().map(|l| html! {
                                    <tr>
                                        <td><time datetime={l.ts.clone()} title={l.ts.clone()}>
                                            { Timestamp::parse(&l.ts).map_or_else(|_| l.ts.clone(), when) }
                                        </time></td>
                                        <td>{ format!("{} → {}", l.from_level, l.to_level) }</td>
                                        <td>{ format!("#{}", l.seq) }</td>
                                        <td class="num">{ money(l.old_goal) }</td>
                                        <td class="num">{ if l.new_goal > 0 { money(l.new_goal) } else { "—".to_owned() } }</td>
                                        <td class="num">{ count(l.member_count) }</td>
                                        <td>{ if l.exact_hit { "yes" } else { "no" } }</td>
                                    </tr>
                                }) }
                            </tbody>
                        </table>
                    </div>
                }
            </details>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(text: &str) -> i64 {
        Timestamp::parse(text).expect("valid").micros()
    }

    fn point(seq: u64, ts: &str, level: u8, evo: i64, goal: i64, power: i64) -> TimelinePoint {
        TimelinePoint {
            seq,
            ts: mechfund_core::parse::TsText::new(ts).expect("a short timestamp"),
            level,
            evo_acc: evo,
            power_acc: power,
            goal_requirement: goal,
            cumulative_donations_cents: evo,
            member_count: 10,
        }
    }

    #[test]
    fn money_ticks_are_round_dollars_covering_the_max() {
        // 1000 cents / 4 = 250 -> next of 1, 2, 5 x 100 is 500.
        assert_eq!(money_ticks(1000, 4), vec![0, 500, 1000]);
        // $234.50 / 4 = 5862.5 cents -> 10000 (=$100); top rounded up to $300.
        assert_eq!(money_ticks(23_450, 4), vec![0, 10_000, 20_000, 30_000]);
        // Nothing yet: a $1 axis.
        assert_eq!(money_ticks(0, 4), vec![0, 100]);
        assert_eq!(money_ticks(1500, 4), vec![0, 500, 1000, 1500]);
        assert_eq!(ceil_div(10, 5), 2);
        assert_eq!(ceil_div(11, 5), 3);
        assert_eq!(ceil_div(0, 5), 0);
        assert_eq!(nice(1), 1);
        assert_eq!(nice(11), 20);
        assert_eq!(nice(100), 100);
        assert_eq!(nice(101), 200);
        assert_eq!(money_tick(100_000), "$1,000");
        assert_eq!(money_tick(150), "$1.50");
    }

    #[test]
    fn time_ticks_fall_on_round_times() {
        let t0 = micros("2025-05-28T09:40:00Z");
        let t1 = micros("2025-05-28T14:10:00Z");
        // 4.5 h with at most 5 ticks: 1 h spacing, first tick at 10:00.
        let (ticks, step) = time_ticks(t0, t1, 5);
        assert_eq!(step, HOUR);
        let labels: Vec<String> = ticks.iter().map(|&t| time_label(t, step)).collect();
        assert_eq!(labels, ["10:00", "11:00", "12:00", "13:00", "14:00"]);
        // 10 days, 5 ticks: 2-day spacing from an epoch-aligned day.
        let (ticks, step) = time_ticks(micros("2025-05-01T12:00:00Z"), micros("2025-05-11T12:00:00Z"), 5);
        assert_eq!(step, 2 * DAY);
        let labels: Vec<String> = ticks.iter().map(|&t| time_label(t, step)).collect();
        // 2025-05-01 is day 20209 since the epoch (odd), so even days start on May 2.
        assert_eq!(labels, ["May 2", "May 4", "May 6", "May 8", "May 10"]);
    }

    #[test]
    fn long_spans_tick_on_month_and_year_starts() {
        let t0 = micros("2025-07-02T16:39:49Z");
        let t1 = micros("2029-03-13T03:23:13Z");
        // About 1350 days = 45 average months; 4 ticks -> every 12 months, on January 1st.
        let (ticks, step) = time_ticks(t0, t1, 4);
        let labels: Vec<String> = ticks.iter().map(|&t| time_label(t, step)).collect();
        assert_eq!(labels, ["2026", "2027", "2028", "2029"]);
        assert_eq!(ticks[0], micros("2026-01-01T00:00:00Z"));
        // 3 ticks -> 45 / 12 = 4 years needs 2-year spacing (from year 0, so even years).
        let (ticks, step) = time_ticks(t0, t1, 3);
        let labels: Vec<String> = ticks.iter().map(|&t| time_label(t, step)).collect();
        assert_eq!(labels, ["2026", "2028"]);
        // May 28 to Sep 10 (105 days, 4 months): 14 days gives 7.5 > 5 ticks, so monthly.
        let (ticks, step) = time_ticks(micros("2025-05-28T00:00:00Z"), micros("2025-09-10T00:00:00Z"), 5);
        let labels: Vec<String> = ticks.iter().map(|&t| time_label(t, step)).collect();
        assert_eq!(labels, ["Jun 2025", "Jul 2025", "Aug 2025", "Sep 2025"]);
    }

    #[test]
    fn time_labels_shorten_with_the_spacing() {
        let t = micros("2025-05-28T00:00:00Z");
        assert_eq!(time_label(t, HOUR), "May 28");
        assert_eq!(time_label(t + 14 * HOUR, HOUR), "14:00");
        assert_eq!(time_label(t, 30 * DAY), "May 2025");
        assert_eq!(time_label(t, 365 * DAY), "2025");
        assert_eq!(time_label(micros("2025-01-05T00:00:00Z"), DAY), "Jan 5");
    }

    #[test]
    fn nearest_picks_the_closest_x() {
        let xs = [10.0, 20.0, 40.0];
        assert_eq!(nearest(&xs, 0.0), Some(0));
        assert_eq!(nearest(&xs, 14.0), Some(0));
        assert_eq!(nearest(&xs, 15.0), Some(0)); // a tie goes left
        assert_eq!(nearest(&xs, 16.0), Some(1));
        assert_eq!(nearest(&xs, 31.0), Some(2));
        assert_eq!(nearest(&xs, 99.0), Some(2));
        assert_eq!(nearest(&[], 5.0), None);
    }

    #[test]
    fn keys_move_the_highlight_within_bounds() {
        assert_eq!(key_move("ArrowRight", None, 3), Some(Some(0)));
        assert_eq!(key_move("ArrowLeft", None, 3), Some(Some(2)));
        assert_eq!(key_move("ArrowRight", Some(2), 3), Some(Some(2)));
        assert_eq!(key_move("ArrowLeft", Some(0), 3), Some(Some(0)));
        assert_eq!(key_move("Home", Some(2), 3), Some(Some(0)));
        assert_eq!(key_move("End", Some(0), 3), Some(Some(2)));
        assert_eq!(key_move("Escape", Some(1), 3), Some(None));
        assert_eq!(key_move("a", Some(1), 3), None);
        assert_eq!(key_move("ArrowLeft", None, 0), None);
    }

    #[test]
    fn tooltips_open_towards_the_roomier_side() {
        assert_eq!(
            tooltip_style(25.0),
            "position: absolute; top: 0.25rem; left: calc(25.0% + 8px); max-width: calc(75.0% - 12px); white-space: normal;"
        );
        assert_eq!(
            tooltip_style(80.0),
            "position: absolute; top: 0.25rem; right: calc(20.0% + 8px); max-width: calc(80.0% - 12px); white-space: normal;"
        );
    }

    #[test]
    fn paths_hold_steps_or_join_points() {
        let pts = [(0.0, 10.0), (5.0, 20.0), (7.5, 5.0)];
        assert_eq!(step_path(&pts), "M0.0,10.0H5.0V20.0H7.5V5.0");
        assert_eq!(line_path(&pts), "M0.0,10.0L5.0,20.0L7.5,5.0");
    }

    #[test]
    fn times_never_go_back_and_spread_equal_times() {
        let pts = [
            point(1, "2025-05-28T10:00:00Z", 1, 0, 1000, 0),
            point(2, "2025-05-28T09:00:00Z", 1, 0, 1000, 0),
            point(3, "bad", 1, 0, 1000, 0),
            point(4, "2025-05-28T11:00:00Z", 1, 0, 1000, 0),
        ];
        let t = micros("2025-05-28T10:00:00Z");
        assert_eq!(times(&pts), vec![t, t, t, t + HOUR]);
        let same = [point(1, "2025-05-28T10:00:00Z", 1, 0, 1000, 0), point(2, "2025-05-28T10:00:00Z", 1, 0, 1000, 0)];
        assert_eq!(times(&same), vec![t, t + 1_000_000]);
    }

    #[test]
    fn plot_maps_points_into_the_frame() {
        let pts = [
            point(1, "2025-05-28T10:00:00Z", 1, 0, 1000, 0),
            point(2, "2025-05-28T11:00:00Z", 1, 500, 1000, 400),
            point(3, "2025-05-28T12:00:00Z", 2, 0, 1500, 900),
        ];
        let up = LevelUp {
            seq: 3,
            ts: "2025-05-28T12:00:00Z".to_owned(),
            from_level: 1,
            to_level: 2,
            exact_hit: false,
            old_goal: 1000,
            new_goal: 1500,
            member_count: 10,
            bonus: 0,
        };
        let width = 402.0; // plot width 402 - 68 - 34 = 300
        let p = plot(&pts, std::slice::from_ref(&up), width).expect("two points or more");
        assert_eq!(p.xs, vec![68.0, 218.0, 368.0]);
        // Max 1500 cents -> ticks 0, 500, 1000, 1500; plot height 300 - 14 - 30 = 256.
        assert_eq!(p.y_max, 1500);
        assert!((p.y(1500) - 14.0).abs() < 1e-9);
        assert!((p.y(0) - 270.0).abs() < 1e-9);
        assert!((Plot::y_level(11) - 14.0).abs() < 1e-9);
        assert!((Plot::y_level(1) - 270.0).abs() < 1e-9);
        assert_eq!(p.y_ticks.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>(), ["$0", "$5", "$10", "$15"]);
        assert_eq!(p.markers.len(), 1);
        assert!((p.markers[0].0 - 368.0).abs() < 1e-9);
        assert!(p.markers[0].1.starts_with("Level 1 → 2 at 2025-05-28 12:00 UTC (event #3): reached $10.00"));
        // Goal 1000 -> y = 14 + 256 * (1 - 1000/1500) = 99.33; then 1500 -> 14.
        assert_eq!(p.goal, "M68.0,99.3H218.0V99.3H368.0V14.0");
        assert!(plot(&pts[..1], &[], width).is_none());
    }

    #[test]
    fn summary_reads_the_last_point() {
        let pts =
            [point(1, "2025-05-28T10:00:00Z", 1, 0, 1000, 0), point(2, "2025-05-28T11:00:00Z", 2, 250, 1500, 400)];
        let top = [point(3, "2025-05-28T12:00:00Z", 11, 1009, 0, 35_089)];
        assert_eq!(describe_point(&top[0]), "2025-05-28 12:00 UTC: level 11, max level (no goal), power $350.89.");
        assert_eq!(
            summary(&pts, 1),
            "History from 2025-05-28 10:00 UTC to 2025-05-28 11:00 UTC: 1 level-up, reaching level 2; evolution \
             $2.50 of $15.00, power $4.00."
        );
    }
}
