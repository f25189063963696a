//! How a simulated device answers direct methods: [`MethodResponder`].

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

/// A direct-method callback: method name and JSON payload in, status and JSON payload out.
pub type MethodHandler = Arc<dyn Fn(&str, Value) -> (i32, Value) + Send + Sync>;

/// How a simulated device answers direct methods. The status is the device's own integer;
/// the service receives it as `status` and the payload as `payload`.
#[derive(Clone, Default)]
pub enum MethodResponder {
    /// Status 200 with the request's payload (the default).
    #[default]
    Echo,
    /// The same status and payload for every method.
    Fixed {
        /// The status.
        status: i32,
        /// The payload.
        payload: Value,
    },
    /// Whatever the callback returns. It runs on the device's connection task, so it should
    /// return quickly; a request without a JSON payload is passed `null`.
    Callback(MethodHandler),
}

impl MethodResponder {
    /// A responder from a callback.
    pub fn callback(f: impl Fn(&str, Value) -> (i32, Value) + Send + Sync + 'static) -> Self {
        MethodResponder::Callback(Arc::new(f))
    }

    /// The answer to `method` called with `payload`: `(status, payload)`.
    pub fn answer(&self, method: &str, payload: Value) -> (i32, Value) {
        match self {
            MethodResponder::Echo => (200, payload),
            MethodResponder::Fixed { status, payload } => (*status, payload.clone()),
            MethodResponder::Callback(f) => f(method, payload),
        }
    }
}

impl fmt::Debug for MethodResponder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MethodResponder::Echo => f.write_str("Echo"),
            MethodResponder::Fixed { status, .. } => write!(f, "Fixed({status})"),
            MethodResponder::Callback(_) => f.write_str("Callback"),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn responders() {
        assert_eq!(
            MethodResponder::Echo.answer("m", json!({"a": 1})),
            (200, json!({"a": 1}))
        );
        let fixed = MethodResponder::Fixed {
            status: 404,
            payload: json!("no"),
        };
        assert_eq!(fixed.answer("m", Value::Null), (404, json!("no")));
        let cb = MethodResponder::callback(|m, p| (-1, json!([m, p])));
        assert_eq!(cb.answer("x", json!(2)), (-1, json!(["x", 2])));
        assert_eq!(format!("{cb:?}"), "Callback");
    }
}
