//! The mapping from HTTP methods to resource actions.

use std::collections::HashMap;

/// Which action each HTTP method performs. Methods are matched case-sensitively; a method
/// that is not listed maps to no action and is never permitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodMap(HashMap<String, String>);

impl Default for MethodMap {
    /// `GET`/`HEAD` read, `POST`/`PUT`/`PATCH` write, `DELETE` delete.
    fn default() -> Self {
        let pairs = [
            ("GET", "read"),
            ("HEAD", "read"),
            ("POST", "write"),
            ("PUT", "write"),
            ("PATCH", "write"),
            ("DELETE", "delete"),
        ];
        Self(
            pairs
                .iter()
                .map(|(method, action)| ((*method).to_owned(), (*action).to_owned()))
                .collect(),
        )
    }
}

impl MethodMap {
    /// A map from explicit pairs.
    pub fn new(map: HashMap<String, String>) -> Self {
        Self(map)
    }

    /// The action a method performs.
    pub fn action(&self, method: &str) -> Option<&str> {
        self.0.get(method).map(String::as_str)
    }
}
