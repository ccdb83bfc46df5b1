//! A fresh load renders in steps, a task each, so a big log never blocks the page for one long
//! first render: the progress first, then diagnostics and what-if, the chart, the table.

use std::rc::Rc;

use wasm_bindgen_futures::spawn_local;
use yew::{hook, use_effect_with, use_state};

use crate::analysis::Analysis;
use crate::browser;

/// How far the page has rendered `analysis`: 0 in the very render that first shows it, then
/// 1, 2 and 3, each a task later. The stage belongs to one analysis: a new one starts at 0.
#[hook]
pub fn use_render_stage(analysis: Option<&Rc<Analysis>>) -> u8 {
    let staged = use_state(|| (None::<usize>, 0u8));
    let key = analysis.map(|a| Rc::as_ptr(a) as usize);
    {
        let staged = staged.clone();
        use_effect_with(key, move |&key| {
            staged.set((key, 0));
            spawn_local(async move {
                for next in 1..=3 {
                    browser::next_task().await;
                    browser::mark(&format!("mechfund render stage {next}"));
                    staged.set((key, next));
                }
            });
        });
    }
    if staged.0 == key { staged.1 } else { 0 }
}
