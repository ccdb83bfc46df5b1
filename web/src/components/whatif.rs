//! (being written)

use std::rc::Rc;

use mechfund_core::{Now, Rules};
use yew::prelude::*;

use crate::analysis::Analysis;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub analysis: Option<Rc<Analysis>>,
    pub rules: Rc<Rules>,
    pub now: Option<Now>,
}

#[function_component(WhatIf)]
pub fn view(props: &Props) -> Html {
    let _ = props;
    html! {}
}
