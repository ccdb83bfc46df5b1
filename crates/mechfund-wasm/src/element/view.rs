//! The element's shadow DOM: building it and showing a state, the loading state or an error.
//! Styles are `style.css`; text is only ever set with `textContent`.

use mechfund_core::rules::MAX_LEVEL;
use mechfund_core::{Cents, Display, State};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{Document, Element, HtmlElement, ShadowRoot};

/// The element's styles (also shipped as `mechfund-progress.css` for the entry module's error).
const STYLE: &str = include_str!("style.css");

/// What the evolution bar says at the top level, which has no goal.
const MAX_LEVEL_LABEL: &str = "Max level";

/// Sets an attribute; the names are constants, so this cannot fail.
pub(super) fn set(element: &Element, name: &str, value: &str) {
    let _ = element.set_attribute(name, value);
}

fn create(document: &Document, tag: &str, class: &str) -> Result<Element, JsValue> {
    let element = document.create_element(tag)?;
    if !class.is_empty() {
        set(&element, "class", class);
    }
    Ok(element)
}

fn text(element: &Element, text: &str) {
    element.set_text_content(Some(text));
}

fn set_hidden(element: &Element, hidden: bool) {
    if hidden {
        set(element, "hidden", "");
    } else {
        let _ = element.remove_attribute("hidden");
    }
}

/// A labelled `role=progressbar` with a fill.
struct Bar {
    root: Element,
    value: Element,
    fill: HtmlElement,
}

impl Bar {
    fn build(document: &Document, part: &str, class: &str, label: &str) -> Result<Bar, JsValue> {
        let root = create(document, "div", &format!("bar {class}"))?;
        set(&root, "part", part);
        set(&root, "role", "progressbar");
        set(&root, "aria-label", label);
        set(&root, "aria-valuemin", "0");
        let caption = create(document, "div", "caption")?;
        let name = create(document, "span", "name")?;
        text(&name, label);
        let value = create(document, "span", "value")?;
        caption.append_child(&name)?;
        caption.append_child(&value)?;
        let track = create(document, "div", "track")?;
        let fill: HtmlElement = create(document, "div", "fill")?.dyn_into()?;
        set(&fill, "part", &format!("{part}-fill"));
        track.append_child(&fill)?;
        root.append_child(&caption)?;
        root.append_child(&track)?;
        Ok(Bar { root, value, fill })
    }

    /// `now`/`max` (aria and `data-` attributes, cents), `label` (visible and `aria-valuetext`).
    fn show(&self, now: i64, max: i64, label: &str, percent: i64) {
        set(&self.root, "aria-valuemax", &max.to_string());
        set(&self.root, "aria-valuenow", &now.clamp(0, max).to_string());
        set(&self.root, "aria-valuetext", label);
        set(&self.root, "data-percent", &percent.to_string());
        text(&self.value, label);
        let _ = self.fill.style().set_property("width", &format!("{}%", percent.clamp(0, 100)));
    }

    fn clear(&self) {
        for name in ["aria-valuemax", "aria-valuenow", "aria-valuetext", "data-value", "data-max", "data-percent"] {
            let _ = self.root.remove_attribute(name);
        }
        text(&self.value, "");
        let _ = self.fill.style().set_property("width", "0%");
    }
}

/// The shadow DOM.
pub(super) struct View {
    content: Element,
    /// `part=level`: "Level 3 · Medium Community", as two spans.
    level: Element,
    level_number: Element,
    tier: Element,
    evo: Bar,
    power: Bar,
    total: Element,
    error: Element,
}

impl View {
    pub(super) fn build(document: &Document, root: &ShadowRoot) -> Result<View, JsValue> {
        root.set_text_content(None);
        let style = create(document, "style", "")?;
        text(&style, STYLE);
        let card = create(document, "div", "card")?;
        set(&card, "part", "card");
        let content = create(document, "div", "content")?;
        let level = create(document, "div", "level")?;
        set(&level, "part", "level");
        let level_number = create(document, "span", "number")?;
        let tier = create(document, "span", "tier")?;
        level.append_child(&level_number)?;
        level.append_child(&tier)?;
        let evo = Bar::build(document, "evo-bar", "evo", "Evolution")?;
        let power = Bar::build(document, "power-bar", "power", "Power")?;
        let total = create(document, "div", "total")?;
        set(&total, "part", "total");
        let error = create(document, "div", "error")?;
        set(&error, "part", "error");
        set(&error, "role", "alert");
        set_hidden(&error, true);
        for child in [&level, &evo.root, &power.root, &total] {
            content.append_child(child)?;
        }
        card.append_child(&content)?;
        card.append_child(&error)?;
        root.append_child(&style)?;
        root.append_child(&card)?;
        Ok(View { content, level, level_number, tier, evo, power, total, error })
    }

    pub(super) fn show_loading(&self) {
        set_hidden(&self.content, false);
        set_hidden(&self.error, true);
        text(&self.error, "");
        text(&self.level_number, "Loading…");
        text(&self.tier, "");
        let _ = self.level.remove_attribute("data-value");
        self.evo.clear();
        self.power.clear();
        text(&self.total, "");
        let _ = self.total.remove_attribute("data-value");
    }

    /// Shows `message`; keeps the last data visible (`stale`) when a reload failed.
    pub(super) fn show_error(&self, message: &str, stale: bool) {
        text(&self.error, message);
        set_hidden(&self.error, false);
        set_hidden(&self.content, !stale);
    }

    pub(super) fn render(&self, state: &State, shown: &Display) {
        set_hidden(&self.content, false);
        set_hidden(&self.error, true);
        text(&self.error, "");
        let max_level = state.level >= MAX_LEVEL;
        let level = if max_level { format!("Level {} (max)", state.level) } else { format!("Level {}", state.level) };
        text(&self.level_number, &level);
        text(&self.tier, &format!(" · {}", shown.tier));
        set(&self.level, "data-value", &state.level.to_string());
        set(&self.level, "data-tier", shown.tier);

        if max_level {
            // No goal at the top: the bar is full and says so (not "$10.09 / $0.00"); aria in
            // percent, as there are no cents to reach.
            self.evo.show(100, 100, MAX_LEVEL_LABEL, 100);
        } else {
            let label = format!("{} / {}", Cents(state.evo_acc), Cents(state.goal_requirement));
            self.evo.show(state.evo_acc, state.goal_requirement, &label, shown.evo_percent);
        }
        set(&self.evo.root, "data-value", &state.evo_acc.to_string());
        set(&self.evo.root, "data-max", &state.goal_requirement.to_string());
        set(&self.evo.root, "data-max-level", if max_level { "true" } else { "false" });

        let label = format!("{} / {}", Cents(shown.power_now), Cents(shown.power_max));
        self.power.show(shown.power_now, shown.power_max, &label, shown.power_percent);
        set(&self.power.root, "data-value", &shown.power_now.to_string());
        set(&self.power.root, "data-max", &shown.power_max.to_string());
        set(&self.power.root, "data-offline", if shown.is_offline { "true" } else { "false" });

        text(&self.total, &format!("Total donated: {}", Cents(state.cumulative_donations_cents)));
        set(&self.total, "data-value", &state.cumulative_donations_cents.to_string());
    }
}
