//! Sample data for demos, benchmarks and bulk tests: set-based inserts,
//! audited like any other import.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use entity::{person, subscription_event};
use futures_util::{StreamExt, TryStreamExt, stream};
use sea_orm::ActiveValue::Set;
use uuid::Uuid;

use crate::audit::{self, Action, NewEvent, Subject};
use crate::auth::{Actor, Caller};
use crate::db::{Db, insert_in_chunks};
use crate::domain::{AuthorizationType, SourceType};
use crate::error::Result;

/// People per transaction (each with its own `PEOPLE_IMPORTED` event).
const PEOPLE_PER_TRANSACTION: usize = 50_000;
/// Rows per INSERT: 25 columns each stays under SQLite's bind limit.
const ROWS_PER_INSERT: usize = 1_000;
/// Batches inserted at once.
const CONCURRENT_TRANSACTIONS: usize = 2;

const FIRST: [&str; 16] = [
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "Ken",
    "Margaret",
    "Dennis",
    "Radia",
    "Linus",
    "Hedy",
    "Tim",
    "Katherine",
    "John",
];
const LAST: [&str; 16] = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Thompson",
    "Hamilton",
    "Ritchie",
    "Perlman",
    "Torvalds",
    "Lamarr",
    "Berners-Lee",
    "Johnson",
    "McCarthy",
];
const COMPANY: [&str; 8] = [
    "Analytical Engines Ltd",
    "Cobol Systems",
    "Enigma Partners",
    "Structured Co",
    "Abstraction AG",
    "Literate Software",
    "Apollo Guidance",
    "Packet Switching SA",
];

/// A cheap, well-mixed pseudo-random number from an index (splitmix64).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Inserts `count` sample people (varied cards, one in ten unsubscribed),
/// audited as `PEOPLE_IMPORTED` by actor `consentry-seed`. Returns how many
/// were inserted.
#[tracing::instrument(skip(db))]
pub async fn seed(db: &Db, count: u64) -> Result<u64> {
    let caller = Caller::new(Actor::new("consentry-seed", []));
    let run = Uuid::now_v7().simple().to_string()[20..].to_owned();
    let now = crate::time::now();
    let today = crate::time::today();
    let batches = (0..count)
        .step_by(PEOPLE_PER_TRANSACTION)
        .map(|start| (start, (count - start).min(PEOPLE_PER_TRANSACTION as u64)));
    // Two transactions at a time: on PostgreSQL each keeps a server process
    // busy with index maintenance, so the inserts use both cores of a small
    // machine (SQLite's writers take turns; the next batch is built
    // meanwhile).
    stream::iter(batches)
        .map(|(start, batch)| seed_batch(db, &caller, &run, now, today, start, batch))
        .buffer_unordered(CONCURRENT_TRANSACTIONS)
        .try_fold(0, |done, batch| async move { Ok(done + batch) })
        .await
}

/// Inserts people `start..start + batch` in one transaction, with their
/// opt-outs and the import's audit event.
async fn seed_batch(
    db: &Db,
    caller: &Caller,
    run: &str,
    now: DateTime<Utc>,
    today: NaiveDate,
    start: u64,
    batch: u64,
) -> Result<u64> {
    let mut people = Vec::with_capacity(batch as usize);
    let mut opt_outs = Vec::new();
    let mut subjects = Vec::with_capacity(batch as usize);
    for i in start..start + batch {
        let r = mix(i ^ 0x5EED);
        let first = FIRST[(r % 16) as usize];
        let last = LAST[((r >> 8) % 16) as usize];
        let id = Uuid::now_v7();
        let auth = match (r >> 16) % 8 {
            0 => None,
            n => Some(AuthorizationType::ALL[(n - 1) as usize % AuthorizationType::ALL.len()]),
        };
        let source = SourceType::ALL[((r >> 24) % SourceType::ALL.len() as u64) as usize];
        let unsubscribed = (r >> 32).is_multiple_of(10);
        let consent = auth == Some(AuthorizationType::Consent);
        let email = format!(
            "{}.{}.{run}{i}@example.com",
            first.to_lowercase(),
            last.to_lowercase()
        );
        subjects.push(Subject {
            person_id: id,
            changes: vec![],
        });
        people.push(person::ActiveModel {
            id: Set(id),
            first_name: Set(Some(first.to_owned())),
            last_name: Set(Some(last.to_owned())),
            company: Set(Some(COMPANY[((r >> 40) % 8) as usize].to_owned())),
            title: Set(Some("Engineer".to_owned())),
            email_normalized: Set(Some(email.clone())),
            email: Set(Some(email)),
            phone: Set(Some(format!("+1 555 {:04}", i % 10_000))),
            website: Set(None),
            other: Set(None),
            salesforce_id: Set(None),
            facebook: Set(None),
            twitter: Set(None),
            linkedin: Set(None),
            authorization_type: Set(auth.map(|a| a.as_str().to_owned())),
            authorization_other: Set(
                (auth == Some(AuthorizationType::Other)).then(|| "Historic agreement".to_owned())
            ),
            consent_date: Set(consent.then(|| today - Duration::days(((r >> 48) % 365) as i64))),
            processing_purpose: Set(consent.then(|| "Product newsletter".to_owned())),
            source_type: Set(Some(source.as_str().to_owned())),
            source_other: Set((source == SourceType::Other).then(|| "Trade fair".to_owned())),
            unsubscribed: Set(unsubscribed),
            unsubscribed_at: Set(unsubscribed.then_some(now)),
            created_at: Set(now),
            updated_at: Set(now),
        });
        if unsubscribed {
            opt_outs.push(subscription_event::ActiveModel {
                id: Set(Uuid::now_v7()),
                person_id: Set(id),
                kind: Set("OPT_OUT".to_owned()),
                channel: Set("USER".to_owned()),
                occurred_at: Set(now),
                actor: Set(caller.actor.subject.clone()),
                reason: Set(None),
                reconsent_date: Set(None),
                reconsent_method: Set(None),
                reconsent_evidence: Set(None),
            });
        }
    }

    let txn = db.begin_write().await?;
    insert_in_chunks(&*txn, people, ROWS_PER_INSERT).await?;
    insert_in_chunks(&*txn, opt_outs, ROWS_PER_INSERT).await?;
    audit::append(
        &txn,
        NewEvent::success(caller, Action::PeopleImported)
            .subjects(subjects)
            .details(serde_json::json!({ "source": "seed", "count": batch })),
    )
    .await?;
    txn.commit().await?;
    Ok(batch)
}
