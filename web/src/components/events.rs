//! (being written)

use std::rc::Rc;

use yew::prelude::*;

use crate::analysis::Analysis;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub analysis: Rc<Analysis>,
    #[prop_or_default]
    pub mech: String,
}

#[function_component(Events)]
pub fn view(props: &Props) -> Html {
    let _ = &props.analysis;
    html! {}
}
