//! The progress card of `GET /api/v1/mechs/{mech}/card.svg`: a mech's level and tier, its
//! evolution and power bars and the total donated, as one self-contained SVG for the places where
//! no script runs (an `<img>` under a strict Content-Security-Policy, a README behind GitHub's
//! image proxy, a stream overlay).
//!
//! [`render`] is a pure function of a state and its display (exactly what `GET …/state`
//! answers); it computes no rule. The SVG has a fixed size, no script, no style sheet and no
//! external reference (fonts, images, links): the system font stack draws it. Every text taken
//! from data is XML-escaped.

use std::fmt::Write as _;

use mechfund_core::rules::MAX_LEVEL;
use mechfund_core::{Cents, Display, State};
use utoipa::ToSchema;

/// The card's colours (`?theme=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Theme {
    /// Dark text on white (the default).
    #[default]
    Light,
    /// Light text on GitHub's dark background.
    Dark,
}

impl Theme {
    /// `light` or `dark`; `None` for anything else.
    #[must_use]
    pub fn parse(text: &str) -> Option<Theme> {
        match text {
            "light" => Some(Theme::Light),
            "dark" => Some(Theme::Dark),
            _ => None,
        }
    }

    fn palette(self) -> &'static Palette {
        match self {
            Theme::Light => &LIGHT,
            Theme::Dark => &DARK,
        }
    }
}

/// The colours of a theme.
#[derive(Debug)]
struct Palette {
    background: &'static str,
    border: &'static str,
    text: &'static str,
    muted: &'static str,
    track: &'static str,
    evolution: &'static str,
    power: &'static str,
    offline: &'static str,
}

const LIGHT: Palette = Palette {
    background: "#ffffff",
    border: "#d0d7de",
    text: "#1f2328",
    muted: "#59636e",
    track: "#e6e9ed",
    evolution: "#0969da",
    power: "#1a7f37",
    offline: "#cf222e",
};

const DARK: Palette = Palette {
    background: "#0d1117",
    border: "#30363d",
    text: "#e6edf3",
    muted: "#9198a1",
    track: "#262c36",
    evolution: "#4493f8",
    power: "#3fb950",
    offline: "#f85149",
};

/// The card's width (its viewBox and its size in CSS pixels).
pub const WIDTH: u32 = 432;
/// The card's height.
pub const HEIGHT: u32 = 180;
/// The margin around the content.
const PAD: u32 = 16;
/// The length of a full bar: 4 units per percent, so widths are whole numbers.
const BAR: u32 = WIDTH - 2 * PAD;
/// The bars' thickness.
const BAR_HEIGHT: u32 = 10;
/// Characters of the mech id drawn (ids run to 100); the title and description hold all of it.
const SHOWN_ID_CHARS: usize = 24;
/// The width left to "mech {id}" beside "Level N": wide letters are clipped there, not drawn
/// over the level.
const ID_WIDTH: u32 = 310;
/// The id of the clip path of "mech {id}" (a fragment of the card itself: nothing is fetched).
const ID_CLIP: &str = "mechfund-card-id";
/// The system font stack: no web font is fetched.
const FONTS: &str = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif";
/// The ids `aria-labelledby` names (each SVG loaded as an image is a document of its own).
const TITLE_ID: &str = "mechfund-card-title";
const DESC_ID: &str = "mechfund-card-desc";

/// The card of `state` at `display` (the display state of `GET …/state`, at the same `now`).
#[must_use]
pub fn render(state: &State, display: &Display, theme: Theme) -> String {
    let palette = theme.palette();
    let max_level = state.level >= MAX_LEVEL;
    let evo_text = if max_level {
        "Max level".to_owned()
    } else {
        format!("{} / {} · {}%", Cents(state.evo_acc), Cents(state.goal_requirement), display.evo_percent)
    };
    let power_text =
        format!("{} / {} · {}%", Cents(display.power_now), Cents(display.power_max), display.power_percent);
    let (power_label, power_colour) =
        if display.is_offline { ("Power (offline)", palette.offline) } else { ("Power", palette.power) };
    let total = Cents(state.cumulative_donations_cents).to_string();

    let mut svg = String::with_capacity(2048);
    // Writing to a String cannot fail.
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{TITLE_ID} {DESC_ID}" font-family="{FONTS}" font-size="13" fill="{text}">"#,
        text = palette.text,
    );
    let _ = write!(
        svg,
        r#"<title id="{TITLE_ID}">{}</title><desc id="{DESC_ID}">{}</desc>"#,
        escape(&format!("mech {}: level {}", state.mech_id, state.level)),
        escape(&description(state, display)),
    );
    let _ = write!(
        svg,
        r#"<rect x="0.5" y="0.5" width="{}" height="{}" rx="8" fill="{}" stroke="{}"/>"#,
        WIDTH - 1,
        HEIGHT - 1,
        palette.background,
        palette.border,
    );
    let right = WIDTH - PAD;
    let _ = write!(
        svg,
        r#"<clipPath id="{ID_CLIP}"><rect x="0" y="0" width="{}" height="{HEIGHT}"/></clipPath><text x="{PAD}" y="32" font-size="16" font-weight="600" clip-path="url(#{ID_CLIP})">mech {}</text><text x="{right}" y="32" font-size="16" font-weight="600" text-anchor="end">Level {}</text><text x="{PAD}" y="52" font-size="12" fill="{}">{}</text>"#,
        PAD + ID_WIDTH,
        escape(&shown_id(&state.mech_id)),
        state.level,
        palette.muted,
        escape(display.tier),
    );
    meter(&mut svg, 80, "Evolution", palette.muted, &evo_text, display.evo_percent, palette.evolution, palette.track);
    meter(&mut svg, 124, power_label, palette.muted, &power_text, display.power_percent, power_colour, palette.track);
    let _ = write!(
        svg,
        r#"<text x="{PAD}" y="164" fill="{}">Total donated</text><text x="{right}" y="164" font-weight="600" text-anchor="end">{}</text></svg>"#,
        palette.muted,
        escape(&total),
    );
    svg
}

/// A labelled bar whose baseline of text is at `y`, the bar below it.
#[allow(clippy::too_many_arguments, reason = "one call per bar, every argument named at the call")]
fn meter(svg: &mut String, y: u32, label: &str, muted: &str, value: &str, percent: i64, fill: &str, track: &str) {
    let bar_y = y + 8;
    let right = WIDTH - PAD;
    let radius = BAR_HEIGHT / 2;
    let _ = write!(
        svg,
        r#"<text x="{PAD}" y="{y}" fill="{muted}">{}</text><text x="{right}" y="{y}" text-anchor="end">{}</text><rect x="{PAD}" y="{bar_y}" width="{BAR}" height="{BAR_HEIGHT}" rx="{radius}" fill="{track}"/><rect x="{PAD}" y="{bar_y}" width="{}" height="{BAR_HEIGHT}" rx="{radius}" fill="{fill}"/>"#,
        escape(label),
        escape(value),
        bar_width(percent),
    );
}

/// The filled length of a bar at `percent`, clamped to 0..=100 %.
fn bar_width(percent: i64) -> u32 {
    let percent = u32::try_from(percent.clamp(0, 100)).unwrap_or(0);
    BAR * percent / 100
}

/// The mech id as drawn: long ids are cut with an ellipsis so they stay on the card.
fn shown_id(id: &str) -> String {
    if id.chars().count() <= SHOWN_ID_CHARS {
        return id.to_owned();
    }
    let mut cut: String = id.chars().take(SHOWN_ID_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// Every number of the card in words, for screen readers (the SVG's `<desc>`).
fn description(state: &State, display: &Display) -> String {
    let mut words = format!("Level {} of {MAX_LEVEL}, {}. ", state.level, display.tier);
    if state.level >= MAX_LEVEL {
        words.push_str("Evolution: max level reached. ");
    } else {
        let _ = write!(
            words,
            "Evolution: {} of {}, {} percent. ",
            Cents(state.evo_acc),
            Cents(state.goal_requirement),
            display.evo_percent
        );
    }
    let _ = write!(
        words,
        "Power: {} of {}, {} percent{}. Total donated: {}.",
        Cents(display.power_now),
        Cents(display.power_max),
        display.power_percent,
        if display.is_offline { ", offline" } else { "" },
        Cents(state.cumulative_donations_cents),
    );
    if let Some(now) = &display.now {
        let _ = write!(words, " As of {now}.");
    }
    words
}

/// `text` as XML character data or attribute value: the five special characters escaped, and
/// the characters XML 1.0 cannot hold at all (control characters) replaced by U+FFFD.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use mechfund_core::{Rules, display};

    use super::*;

    fn state(level: u8, evo: i64, goal: i64, power: i64, total: i64) -> State {
        State {
            level,
            evo_acc: evo,
            goal_requirement: goal,
            power_acc: power,
            cumulative_donations_cents: total,
            ..State::initial("main", &Rules::default(), Default::default())
        }
    }

    /// The `width` of the `n`th `<rect>` (0: the card, 1: the id's clip, then each bar's track
    /// and fill).
    fn rect_width(svg: &str, n: usize) -> &str {
        let rect = svg.split("<rect ").nth(n + 1).expect("that many rects");
        let start = rect.find(" width=\"").expect("a width") + 8;
        &rect[start..start + rect[start..].find('"').expect("a closing quote")]
    }

    #[test]
    fn a_card_shows_the_display_numbers_as_money_and_percentages() {
        let state = state(3, 123_456, 200_000, 5_000, 1_234_567);
        let display = display(&state, &Rules::default(), None);
        let svg = render(&state, &display, Theme::Light);
        assert!(svg.starts_with(r#"<svg xmlns="http://www.w3.org/2000/svg" width="432" height="180" viewBox="0 0 432 180" role="img" aria-labelledby="mechfund-card-title mechfund-card-desc""#), "{svg}");
        assert!(svg.ends_with("</svg>"));
        assert!(svg.contains(r#"<title id="mechfund-card-title">mech main: level 3</title>"#), "{svg}");
        assert!(svg.contains(">Level 3</text>"), "{svg}");
        assert!(svg.contains(">Tiny Community</text>"), "{svg}");
        // 123456 * 100 / 200000 = 61 %; power_max = 200000 + 100, 5000 * 100 / 200100 = 2 %.
        assert!(svg.contains(">$1,234.56 / $2,000.00 · 61%</text>"), "{svg}");
        assert!(svg.contains(">$50.00 / $2,001.00 · 2%</text>"), "{svg}");
        assert!(svg.contains(">$12,345.67</text>"), "{svg}");
        assert!(svg.contains(
            "Level 3 of 11, Tiny Community. Evolution: $1,234.56 of $2,000.00, 61 percent. \
             Power: $50.00 of $2,001.00, 2 percent. Total donated: $12,345.67.</desc>"
        ));
        assert_eq!(rect_width(&svg, 2), "400", "the evolution track");
        assert_eq!(rect_width(&svg, 3), "244", "61 % of 400");
        assert_eq!(rect_width(&svg, 5), "8", "2 % of 400");
    }

    #[test]
    fn nothing_external_and_nothing_that_runs() {
        let state = state(3, 1, 2, 3, 4);
        for theme in [Theme::Light, Theme::Dark] {
            let svg = render(&state, &display(&state, &Rules::default(), None), theme);
            for forbidden in ["<script", "href", "@import", "<image", "<foreignObject", "<style"] {
                assert!(!svg.contains(forbidden), "{theme:?} card contains {forbidden:?}: {svg}");
            }
            let references: Vec<&str> = svg.match_indices("url(").map(|(i, _)| &svg[i..i + 5]).collect();
            assert_eq!(references, ["url(#"], "only the id's clip path, inside the card: {svg}");
            assert!(!svg.split_whitespace().any(|a| a.starts_with("on") && a.contains('=')), "an event handler: {svg}");
            assert_eq!(svg.matches("http").count(), 1, "only the SVG namespace: {svg}");
        }
    }

    #[test]
    fn level_11_says_max_level_with_a_full_evolution_bar() {
        // DDC keeps the carry at level 11: $10.09 of a goal of 0.
        let state = state(11, 1009, 0, 1009, 38_009);
        let display = display(&state, &Rules::default(), None);
        let svg = render(&state, &display, Theme::Light);
        assert!(svg.contains(">Max level</text>"), "{svg}");
        assert!(!svg.contains("$0.00"), "no goal of $0.00 is shown: {svg}");
        assert!(svg.contains(">mech main: level 11</title>"), "{svg}");
        assert!(svg.contains("Evolution: max level reached."), "{svg}");
        // power_max is 100 at level 11 and the percentage may reach 100.
        assert!(svg.contains(">$10.09 / $1.00 · 100%</text>"), "{svg}");
        assert_eq!(rect_width(&svg, 3), "400");
        assert_eq!(rect_width(&svg, 5), "400");
    }

    #[test]
    fn bars_are_proportional_and_clamped() {
        let state = state(2, 0, 1000, 0, 0);
        let base = display(&state, &Rules::default(), None);
        for (percent, width) in [(0, "0"), (1, "4"), (50, "200"), (99, "396"), (100, "400"), (150, "400"), (-5, "0")] {
            let shown = Display { evo_percent: percent, power_percent: percent, ..base.clone() };
            let svg = render(&state, &shown, Theme::Light);
            assert_eq!(rect_width(&svg, 3), width, "evolution at {percent} %");
            assert_eq!(rect_width(&svg, 5), width, "power at {percent} %");
        }
    }

    #[test]
    fn an_offline_mech_says_so() {
        let state = state(2, 0, 1000, 0, 0);
        let display = display(&state, &Rules::default(), None);
        assert!(display.is_offline);
        let svg = render(&state, &display, Theme::Light);
        assert!(svg.contains(">Power (offline)</text>"), "{svg}");
        assert!(svg.contains("0 percent, offline."), "{svg}");
        assert!(svg.contains(LIGHT.offline), "{svg}");
    }

    #[test]
    fn the_dark_theme_changes_only_colours() {
        let state = state(4, 700, 2500, 900, 5000);
        let display = display(&state, &Rules::default(), None);
        let light = render(&state, &display, Theme::Light);
        let dark = render(&state, &display, Theme::Dark);
        assert!(dark.contains(&format!(r#"fill="{}" stroke="{}""#, DARK.background, DARK.border)), "{dark}");
        assert!(dark.contains(&format!(r#"fill="{}">"#, DARK.text)), "{dark}");
        assert!(!dark.contains(LIGHT.background) && !dark.contains(LIGHT.text), "{dark}");
        let mut recoloured = dark.clone();
        for (d, l) in [
            (DARK.background, LIGHT.background),
            (DARK.border, LIGHT.border),
            (DARK.text, LIGHT.text),
            (DARK.muted, LIGHT.muted),
            (DARK.track, LIGHT.track),
            (DARK.evolution, LIGHT.evolution),
            (DARK.power, LIGHT.power),
        ] {
            recoloured = recoloured.replace(d, l);
        }
        assert_eq!(recoloured, light);
        assert_eq!(Theme::parse("dark"), Some(Theme::Dark));
        assert_eq!(Theme::parse("light"), Some(Theme::Light));
        assert_eq!(Theme::parse("Dark"), None);
        assert_eq!(Theme::parse(""), None);
    }

    #[test]
    fn data_is_escaped_and_long_ids_are_cut() {
        let mut state = state(1, 0, 1000, 0, 0);
        state.mech_id = r#"<a href="x">&'"#.to_owned() + "\u{1}";
        let svg = render(&state, &display(&state, &Rules::default(), None), Theme::Light);
        let escaped = "&lt;a href=&quot;x&quot;&gt;&amp;&apos;\u{FFFD}";
        assert!(svg.contains(&format!(">mech {escaped}</text>")), "{svg}");
        assert!(svg.contains(&format!(">mech {escaped}: level 1</title>")), "{svg}");
        assert!(!svg.contains("<a ") && !svg.contains('\u{1}'), "{svg}");

        state.mech_id = "x".repeat(40);
        let svg = render(&state, &display(&state, &Rules::default(), None), Theme::Light);
        assert!(svg.contains(&format!(">mech {}…</text>", "x".repeat(23))), "{svg}");
        assert!(svg.contains(&format!(">mech {}: level 1</title>", "x".repeat(40))), "the title keeps it all");
        state.mech_id = "é".repeat(24);
        let svg = render(&state, &display(&state, &Rules::default(), None), Theme::Light);
        assert!(svg.contains(&format!(">mech {}</text>", "é".repeat(24))), "24 characters fit, whatever their bytes");
    }

    #[test]
    fn the_description_names_the_moment_shown() {
        let state = state(2, 0, 1000, 500, 0);
        let shown =
            Display { now: Some("2025-01-03T12:00:00Z".to_owned()), ..display(&state, &Rules::default(), None) };
        assert!(render(&state, &shown, Theme::Light).contains(" As of 2025-01-03T12:00:00Z.</desc>"));
    }
}
