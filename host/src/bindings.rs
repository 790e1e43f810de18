//! The one `bindgen!` call: host-side types and traits for the WIT world `upgrade-plugin`.

wasmtime::component::bindgen!({
    world: "upgrade-plugin",
    path: "../wit",
    imports: { default: async | trappable },
    exports: { default: async },
    additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
});

impl Error {
    pub fn message(&self) -> &str {
        match self {
            Error::Denied(m) | Error::NotFound(m) | Error::InvalidInput(m) | Error::Failed(m) | Error::Timeout(m) => m,
        }
    }
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Denied(_) => "denied",
            Error::NotFound(_) => "not-found",
            Error::InvalidInput(_) => "invalid-input",
            Error::Failed(_) => "failed",
            Error::Timeout(_) => "timeout",
        }
    }
    /// Build an error from its WIT kind name (used by scenario fault injection).
    pub fn from_kind(kind: &str, message: String) -> Option<Error> {
        Some(match kind {
            "denied" => Error::Denied(message),
            "not-found" => Error::NotFound(message),
            "invalid-input" => Error::InvalidInput(message),
            "failed" => Error::Failed(message),
            "timeout" => Error::Timeout(message),
            _ => return None,
        })
    }
}
