//! The dashboard's state: the model, the actions that change it and the pure reducer that applies
//! them (a Yew `Reducible`). The app and its loads dispatch the actions; the components only
//! read the model.

pub mod action;
pub mod model;
pub mod reducer;
