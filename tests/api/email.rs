//! `sendEmail`: refusals, footers and headers, the outbox, and delivery over
//! SMTP to a local sink.

use consentry::service::email::{Mailer, deliver_due};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{PUBLIC_URL, TestApp, code};
use crate::smtp_sink::SmtpSink;

const SEND: &str = "mutation($id: UUID!, $s: String!, $t: String!, $h: String) {
  sendEmail(personId: $id, subject: $s, textBody: $t, htmlBody: $h) {
    id subject textBody htmlBody headers { name value } status
  }
}";

async fn contact(app: &TestApp, email: &str) -> String {
    app.create_person(json!({ "firstName": "Ada", "email": email, "complianceCard": { "authorizationType": "LEGITIMATE_INTEREST" } }))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn send(app: &TestApp, id: &str) -> Value {
    app.ok(
        &app.sales(),
        SEND,
        json!({ "id": id, "s": "Our autumn offer", "t": "Hello Ada,\nsee our offer.", "h": "<html><body><p>Hello <b>Ada</b></p></body></html>" }),
    )
    .await["sendEmail"]
        .clone()
}

fn header<'a>(message: &'a Value, name: &str) -> &'a str {
    message["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == name)
        .unwrap()["value"]
        .as_str()
        .unwrap()
}

async fn an_email_gets_the_unsubscribe_link_in_both_bodies_and_headers(app: &TestApp) {
    let id = contact(app, "ada@example.com").await;
    let m = send(app, &id).await;
    assert_eq!(
        m["status"], "QUEUED",
        "no SMTP configured: the message stays queued"
    );
    let link = format!(
        "{PUBLIC_URL}/unsubscribe/{}",
        crate::helpers::links().token(id.parse().unwrap())
    );
    assert_eq!(header(&m, "List-Unsubscribe"), format!("<{link}>"));
    assert_eq!(
        header(&m, "List-Unsubscribe-Post"),
        "List-Unsubscribe=One-Click"
    );
    let text = m["textBody"].as_str().unwrap();
    assert!(text.starts_with("Hello Ada,\nsee our offer."));
    assert!(text.contains(&link), "{text}");
    let html = m["htmlBody"].as_str().unwrap();
    assert!(html.contains(&format!("href=\"{link}\"")), "{html}");
    assert!(
        html.find(&link).unwrap() < html.find("</body>").unwrap(),
        "footer inside the body"
    );
    let event = app.last_event().await;
    assert_eq!(event["action"], "EMAIL_SENT");
    assert_eq!(event["personIds"], json!([id]));
}

async fn an_email_to_an_unsubscribed_person_is_a_conflict(app: &TestApp) {
    let id = contact(app, "u@example.com").await;
    app.ok(
        &app.sales(),
        "mutation($id: UUID!) { unsubscribe(personId: $id) { id } }",
        json!({ "id": id }),
    )
    .await;
    let before = app.audit_count().await;
    let err = app
        .err(&app.sales(), SEND, json!({ "id": id, "s": "Hi", "t": "x" }))
        .await;
    assert_eq!(code(&err), "CONFLICT");
    assert_eq!(app.audit_count().await, before);
}

async fn an_email_to_a_person_without_an_address_is_bad_input(app: &TestApp) {
    let id = app
        .create_person(json!({ "firstName": "NoMail", "complianceCard": { "authorizationType": "LEGITIMATE_INTEREST" } }))
        .await["id"]
        .clone();
    let err = app
        .err(&app.sales(), SEND, json!({ "id": id, "s": "Hi", "t": "x" }))
        .await;
    assert_eq!(code(&err), "BAD_USER_INPUT");
    assert_eq!(err["extensions"]["field"], "personId");
}

async fn an_email_without_a_legal_basis_is_bad_input(app: &TestApp) {
    let id = app.person_id("nobasis@example.com").await;
    let err = app
        .err(&app.sales(), SEND, json!({ "id": id, "s": "Hi", "t": "x" }))
        .await;
    assert_eq!(code(&err), "BAD_USER_INPUT");
    assert!(err["message"].as_str().unwrap().contains("basis"), "{err}");
}

async fn a_subject_with_a_line_break_is_refused(app: &TestApp) {
    let id = contact(app, "h@example.com").await;
    let err = app
        .err(
            &app.sales(),
            SEND,
            json!({ "id": id, "s": "Hi\r\nBcc: x@evil.example", "t": "x" }),
        )
        .await;
    assert_eq!(err["extensions"]["field"], "subject");
}

async fn a_persons_emails_are_listed_newest_first(app: &TestApp) {
    let id = contact(app, "l@example.com").await;
    send(app, &id).await;
    app.ok(
        &app.sales(),
        SEND,
        json!({ "id": id, "s": "Second", "t": "x" }),
    )
    .await;
    let data = app
        .ok(
            &app.compliance(),
            "query($id: UUID!) { person(id: $id) { emails { subject status to } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        data["person"]["emails"],
        json!([{ "subject": "Second", "status": "QUEUED", "to": "l@example.com" },
               { "subject": "Our autumn offer", "status": "QUEUED", "to": "l@example.com" }])
    );
}

async fn a_queued_email_is_delivered_over_smtp_and_its_link_unsubscribes(app: &TestApp) {
    let sink = SmtpSink::start("250 OK").await;
    let mailer = Mailer::new(&sink.url(), "Sales <sales@consentry.test>").unwrap();
    let id = contact(app, "deliver@example.com").await;
    send(app, &id).await;
    let report = deliver_due(&app.db, &mailer).await.unwrap();
    assert_eq!(report.sent, 1);
    let again = deliver_due(&app.db, &mailer).await.unwrap();
    assert_eq!(again.sent, 0, "never sent twice");
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    let raw = &messages[0];
    assert!(
        raw.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
        "{raw}"
    );
    assert!(raw.contains("To: deliver@example.com"), "{raw}");
    assert!(raw.contains("multipart/alternative"), "{raw}");
    let link = raw
        .lines()
        .find_map(|l| l.strip_prefix("List-Unsubscribe: <"))
        .and_then(|l| l.strip_suffix('>'))
        .expect("List-Unsubscribe header")
        .to_owned();
    // Undo quoted-printable soft line breaks and the escaped '='.
    let decoded = raw.replace("=\n", "").replace("=3D", "=");
    assert!(
        decoded.contains(&format!(
            "unsubscribe from these emails at any time: {link}"
        )),
        "text footer: {decoded}"
    );
    assert!(
        decoded.contains(&format!("href=\"{link}\"")),
        "HTML footer: {decoded}"
    );
    let status = app
        .ok(
            &app.sales(),
            "query($id: UUID!) { person(id: $id) { emails { status attempts } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        status["person"]["emails"][0],
        json!({ "status": "SENT", "attempts": 1 })
    );

    let path = link
        .strip_prefix(PUBLIC_URL)
        .expect("link under the public URL");
    let req = axum::http::Request::post(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(axum::body::Body::from("List-Unsubscribe=One-Click"))
        .unwrap();
    assert_eq!(
        app.send(&app.router, req).await.0,
        axum::http::StatusCode::OK
    );
    let p = app
        .ok(
            &app.sales(),
            "query($id: UUID!) { person(id: $id) { unsubscribed } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(p["person"]["unsubscribed"], true);
}

async fn a_refused_delivery_is_retried_later_not_lost(app: &TestApp) {
    let sink = SmtpSink::start("451 4.3.0 try again later").await;
    let mailer = Mailer::new(&sink.url(), "sales@consentry.test").unwrap();
    let id = contact(app, "retry@example.com").await;
    send(app, &id).await;
    let report = deliver_due(&app.db, &mailer).await.unwrap();
    assert_eq!(report.retrying, 1);
    let m = app
        .ok(
            &app.sales(),
            "query($id: UUID!) { person(id: $id) { emails { status attempts lastError } } }",
            json!({ "id": id }),
        )
        .await;
    let m = &m["person"]["emails"][0];
    assert_eq!(m["status"], "QUEUED");
    assert_eq!(m["attempts"], 1);
    assert!(m["lastError"].as_str().unwrap().contains("451"), "{m}");
    let soon = deliver_due(&app.db, &mailer).await.unwrap();
    assert_eq!(
        soon.retrying, 0,
        "waits for its backoff before the next attempt"
    );
}

async fn a_permanently_refused_delivery_fails(app: &TestApp) {
    let sink = SmtpSink::start("550 5.1.1 no such user").await;
    let mailer = Mailer::new(&sink.url(), "sales@consentry.test").unwrap();
    let id = contact(app, "gone@example.com").await;
    send(app, &id).await;
    assert_eq!(deliver_due(&app.db, &mailer).await.unwrap().failed, 1);
}

backend_tests!(
    an_email_gets_the_unsubscribe_link_in_both_bodies_and_headers,
    an_email_to_an_unsubscribed_person_is_a_conflict,
    an_email_to_a_person_without_an_address_is_bad_input,
    an_email_without_a_legal_basis_is_bad_input,
    a_subject_with_a_line_break_is_refused,
    a_persons_emails_are_listed_newest_first,
    a_queued_email_is_delivered_over_smtp_and_its_link_unsubscribes,
    a_refused_delivery_is_retried_later_not_lost,
    a_permanently_refused_delivery_fails,
);
