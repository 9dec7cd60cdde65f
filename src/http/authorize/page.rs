//! The sign-in page: plain, server-rendered HTML that works without JavaScript, with labelled
//! fields, the browser's password-manager hints, and errors announced to screen readers.

use std::fmt::Write;

use crate::issuer::{AuthorizationRequest, SignInFailure};

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:22rem;margin:3rem auto;\
padding:0 1rem;line-height:1.5}label{display:block;margin-top:1rem;font-weight:600}\
input{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}\
button{margin-top:1.5rem;padding:.6rem 1.2rem;font-size:1rem}\
[role=alert]{color:#a00;font-weight:600}";

/// The sign-in form for `request`, with `failure` announced when the last attempt failed.
pub fn sign_in(request: &AuthorizationRequest, failure: Option<SignInFailure>) -> String {
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>Sign in</h1><p>to continue to <strong>{}</strong></p>",
        escape(&request.client.name)
    );
    if let Some(failure) = failure {
        let message = match failure {
            SignInFailure::BadCredentials => "The username or password is incorrect.",
            SignInFailure::Incomplete => "Enter your username and password.",
            SignInFailure::Throttled(_) => "Too many failed attempts. Wait a moment and try again.",
            SignInFailure::Unavailable => "Sign-in is temporarily unavailable. Try again shortly.",
        };
        let _ = write!(body, "<p role=\"alert\" id=\"problem\">{message}</p>");
    }
    let described = if failure.is_some() {
        " aria-describedby=\"problem\""
    } else {
        ""
    };
    body.push_str("<form method=\"post\" action=\"/authorize\">");
    for (name, value) in request.parameters() {
        let _ = write!(
            body,
            "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
            escape(&value)
        );
    }
    let _ = write!(
        body,
        "<label for=\"username\">Username</label>\
         <input id=\"username\" name=\"username\" autocomplete=\"username\" required \
         autofocus{described}>\
         <label for=\"password\">Password</label>\
         <input id=\"password\" name=\"password\" type=\"password\" \
         autocomplete=\"current-password\" required{described}>\
         <button type=\"submit\">Sign in</button></form>"
    );
    document("Sign in", &body)
}

/// A page that explains why the request cannot go on; it links nowhere.
pub fn error(problem: &str) -> String {
    let body = format!(
        "<h1>Sign-in request refused</h1><p role=\"alert\">{}.</p>\
         <p>Return to the application and start again.</p>",
        escape(problem)
    );
    document("Sign-in request refused", &body)
}

fn document(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · gatehouse</title><style>{STYLE}</style></head>\
         <body><main>{body}</main></body></html>"
    )
}

/// HTML-escapes text for element content and double-quoted attribute values.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn markup_in_values_is_escaped() {
        assert_eq!(
            escape("\"><script>alert('x')</script>&"),
            "&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;"
        );
    }
}
