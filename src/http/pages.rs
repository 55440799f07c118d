//! Server-rendered login, consent and error pages. askama escapes every value for HTML, so
//! client names, URIs and scopes are shown as text whatever they contain.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use askama::Template;

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage<'a> {
    pub tenant: &'a str,
    pub client_name: &'a str,
    pub action: &'a str,
    pub request_id: &'a str,
    pub csrf_token: &'a str,
    pub username: &'a str,
    pub error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentPage<'a> {
    pub tenant: &'a str,
    pub client_name: &'a str,
    pub client_uri: Option<&'a str>,
    pub username: &'a str,
    pub resource: &'a str,
    pub scopes: Vec<&'a str>,
    pub redirect_uri: &'a str,
    pub action: &'a str,
    pub request_id: &'a str,
    pub csrf_token: &'a str,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub title: &'a str,
    pub message: &'a str,
}

/// Renders a page with headers that keep it out of caches and frames.
pub fn render(status: StatusCode, page: &impl Template) -> HttpResponse {
    match page.render() {
        Ok(html) => page_response(status).body(html),
        Err(error) => {
            tracing::error!(error = %error, "rendering a page failed");
            page_response(StatusCode::INTERNAL_SERVER_ERROR).body("The page could not be rendered.")
        }
    }
}

/// Starts a page response: HTML, never cached, never framed (clickjacking on the consent
/// buttons), no referrer carrying the authorization request onwards.
pub fn page_response(status: StatusCode) -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::build(status);
    response
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header((
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ));
    response
}

/// An error page for a request that cannot be sent back to the client.
pub fn error_page(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    render(status, &ErrorPage { title, message })
}
