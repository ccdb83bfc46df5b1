//! Plain JS objects, the messages between the page and its replay worker.

use wasm_bindgen::JsValue;

/// `{key: value, ...}`.
#[must_use]
pub fn object(fields: &[(&str, JsValue)]) -> JsValue {
    let object = js_sys::Object::new();
    for (key, value) in fields {
        let _ = js_sys::Reflect::set(&object, &JsValue::from_str(key), value);
    }
    object.into()
}

/// `value[key]`, or `undefined`.
#[must_use]
pub fn field(value: &JsValue, key: &str) -> JsValue {
    js_sys::Reflect::get(value, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}
