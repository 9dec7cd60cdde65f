//! URL templates in the syntax of Istio's path templates.
//!
//! Literal segments match exactly and case-sensitively; `{name}` and `{*}` match exactly one
//! non-empty segment; `{**}`, only as the last segment, matches the rest of the path (one
//! segment or more). Literals are written in the same percent-encoded form as the request.

use std::fmt;

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template must start with '/'")]
    NotAbsolute,
    #[error("template segment {0} is empty")]
    EmptySegment(usize),
    #[error("template segment {0} is not canonical")]
    NonCanonicalSegment(usize),
    #[error("template segment {0} has an unbalanced or misplaced brace")]
    BadVariable(usize),
    #[error("'{{**}}' may only be the last segment")]
    RestNotLast,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    One,
}

/// A parsed URL template.
#[derive(Clone, PartialEq, Eq)]
pub struct UrlTemplate {
    source: String,
    segments: Vec<Segment>,
    rest: bool,
}

impl fmt::Debug for UrlTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UrlTemplate({})", self.source)
    }
}

impl UrlTemplate {
    /// Parses a template such as `/v1/invoices/{id}` or `/static/{**}`.
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let body = source.strip_prefix('/').ok_or(TemplateError::NotAbsolute)?;
        let mut segments = Vec::new();
        let mut rest = false;
        if !body.is_empty() {
            let parts: Vec<&str> = body.split('/').collect();
            for (index, part) in parts.iter().enumerate() {
                if rest {
                    return Err(TemplateError::RestNotLast);
                }
                match *part {
                    "" => return Err(TemplateError::EmptySegment(index)),
                    "{**}" => rest = true,
                    "{*}" => segments.push(Segment::One),
                    _ if part.starts_with('{') && part.ends_with('}') => {
                        let name = &part[1..part.len() - 1];
                        let valid = !name.is_empty()
                            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                        if !valid {
                            return Err(TemplateError::BadVariable(index));
                        }
                        segments.push(Segment::One);
                    }
                    _ if part.contains(['{', '}']) => {
                        return Err(TemplateError::BadVariable(index));
                    }
                    _ => {
                        if !crate::path::is_canonical_segment(part) {
                            return Err(TemplateError::NonCanonicalSegment(index));
                        }
                        segments.push(Segment::Literal((*part).to_owned()));
                    }
                }
            }
        }
        Ok(Self {
            source: source.to_owned(),
            segments,
            rest,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The first literal segment, if the template starts with one (used to index templates).
    pub fn first_literal(&self) -> Option<&str> {
        match self.segments.first() {
            Some(Segment::Literal(text)) => Some(text),
            _ => None,
        }
    }

    /// Whether the canonical request path, split into segments, matches.
    pub fn matches(&self, path_segments: &[&str]) -> bool {
        let fixed = self.segments.len();
        let length_fits = if self.rest {
            path_segments.len() > fixed
        } else {
            path_segments.len() == fixed
        };
        length_fits
            && self
                .segments
                .iter()
                .zip(path_segments)
                .all(|(segment, actual)| match segment {
                    Segment::Literal(text) => text == actual,
                    Segment::One => !actual.is_empty(),
                })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(template: &str, path: &str) -> bool {
        let template = UrlTemplate::parse(template).unwrap();
        let segments = crate::path::segments(path);
        template.matches(&segments)
    }

    #[test]
    fn single_segment_variable_matches_exactly_one_segment() {
        assert!(matches("/v1/invoices/{id}", "/v1/invoices/inv-1"));
        assert!(matches("/v1/invoices/{*}", "/v1/invoices/inv-1"));
        assert!(!matches("/v1/invoices/{id}", "/v1/invoices"));
        assert!(!matches("/v1/invoices/{id}", "/v1/invoices/inv-1/lines"));
    }

    #[test]
    fn rest_variable_matches_one_or_more_trailing_segments() {
        assert!(matches("/static/{**}", "/static/a"));
        assert!(matches("/static/{**}", "/static/a/b/c"));
        assert!(!matches("/static/{**}", "/static"));
        assert!(!matches("/static/{**}", "/other/a"));
    }

    #[test]
    fn literal_segments_are_case_sensitive() {
        assert!(matches("/v1/invoices/{id}", "/v1/invoices/X"));
        assert!(!matches("/v1/invoices/{id}", "/V1/invoices/X"));
        assert!(!matches("/v1/documents/doc-42", "/v1/documents/DOC-42"));
    }

    #[test]
    fn root_template_matches_only_root() {
        assert!(matches("/", "/"));
        assert!(!matches("/", "/a"));
    }

    #[test]
    fn malformed_templates_are_refused() {
        assert_eq!(UrlTemplate::parse("v1"), Err(TemplateError::NotAbsolute));
        assert_eq!(
            UrlTemplate::parse("/a//b"),
            Err(TemplateError::EmptySegment(1))
        );
        assert_eq!(
            UrlTemplate::parse("/a/{**}/b"),
            Err(TemplateError::RestNotLast)
        );
        assert_eq!(
            UrlTemplate::parse("/a/{x"),
            Err(TemplateError::BadVariable(1))
        );
        assert_eq!(
            UrlTemplate::parse("/a/x{y}"),
            Err(TemplateError::BadVariable(1))
        );
        assert_eq!(
            UrlTemplate::parse("/a/../b"),
            Err(TemplateError::NonCanonicalSegment(1))
        );
        assert_eq!(
            UrlTemplate::parse("/a/%2F"),
            Err(TemplateError::NonCanonicalSegment(1))
        );
    }
}
