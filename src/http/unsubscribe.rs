//! The public unsubscribe endpoint: `GET /unsubscribe/{token}` shows a
//! confirmation page with one button; `POST` (the button, or a mail
//! client's RFC 8058 one-click request) unsubscribes at once. No login: the
//! signed token is the authority. A forged token gets 400; an unknown or
//! erased person gets the same page as a successful unsubscribe, so the
//! link reveals nothing.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use crate::AppState;
use crate::error::Error;
use crate::service::subscriptions;

/// The page needs nothing but its inline style and its own form.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
  body {{ font-family: system-ui, sans-serif; margin: 0; padding: 2rem 1rem; background: #f6f7f9; color: #1b1f24; }}
  main {{ max-width: 32rem; margin: 0 auto; background: #fff; padding: 2rem; border-radius: 8px; box-shadow: 0 1px 3px rgba(0,0,0,.12); }}
  h1 {{ font-size: 1.5rem; margin-top: 0; }}
  p {{ line-height: 1.5; }}
  button {{ font-size: 1.1rem; padding: .8rem 1.4rem; border: 0; border-radius: 6px; background: #1f5fbf; color: #fff; cursor: pointer; min-width: 44px; min-height: 44px; }}
  button:focus {{ outline: 3px solid #f2b01e; outline-offset: 2px; }}
</style>
</head>
<body>
<main>
<h1>{title}</h1>
{body}
</main>
</body>
</html>
"#
    );
    super::html_page(status, html, CSP)
}

fn invalid_link() -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "This link is not valid",
        "<p>The unsubscribe link is incomplete or has been altered. Please use the link from the email exactly as it was sent.</p>",
    )
}

fn done() -> Response {
    page(
        StatusCode::OK,
        "You are unsubscribed",
        "<p>You will not receive further emails from us at this address.</p>",
    )
}

/// `GET /unsubscribe/{token}`: the confirmation page.
pub async fn confirm(State(app): State<AppState>, Path(token): Path<String>) -> Response {
    if app.integrations.links.verify(&token).is_none() {
        return invalid_link();
    }
    page(
        StatusCode::OK,
        "Unsubscribe",
        r#"<p>Do you want to stop receiving emails from us?</p>
<form method="post">
  <button type="submit">Unsubscribe</button>
</form>"#,
    )
}

/// `POST /unsubscribe/{token}`: unsubscribes at once (one-click).
pub async fn unsubscribe(State(app): State<AppState>, Path(token): Path<String>) -> Response {
    let Some(person_id) = app.integrations.links.verify(&token) else {
        return invalid_link();
    };
    match subscriptions::unsubscribe_by_link(&app.db, person_id).await {
        Ok(_) | Err(Error::NotFound { .. }) => done(),
        Err(e) => {
            let request_id = uuid::Uuid::now_v7().to_string();
            e.log(Some(&request_id));
            page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                &format!(
                    "<p>We could not record your request. Please try again in a moment. (Reference {request_id})</p>"
                ),
            )
        }
    }
}
