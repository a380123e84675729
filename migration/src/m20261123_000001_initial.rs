//! People, subscription history, the audit trail and its chain head, plus
//! the triggers that make the audit tables append-only on both backends.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{DatabaseBackend, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The all-zero hash that the first audit event chains from.
const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Tables whose rows may be inserted and read, never changed or removed.
const APPEND_ONLY: [&str; 2] = ["audit_event", "audit_event_person"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Person::Table)
                    .col(uuid(Person::Id).primary_key())
                    .col(text_null(Person::FirstName))
                    .col(text_null(Person::LastName))
                    .col(text_null(Person::Company))
                    .col(text_null(Person::Title))
                    .col(text_null(Person::Email))
                    .col(text_null(Person::EmailNormalized))
                    .col(text_null(Person::Phone))
                    .col(text_null(Person::Website))
                    .col(text_null(Person::Other))
                    .col(text_null(Person::SalesforceId))
                    .col(text_null(Person::Facebook))
                    .col(text_null(Person::Twitter))
                    .col(text_null(Person::Linkedin))
                    .col(text_null(Person::AuthorizationType))
                    .col(text_null(Person::AuthorizationOther))
                    .col(date_null(Person::ConsentDate))
                    .col(text_null(Person::ProcessingPurpose))
                    .col(text_null(Person::SourceType))
                    .col(text_null(Person::SourceOther))
                    .col(boolean(Person::Unsubscribed).default(false))
                    .col(timestamp_with_time_zone_null(Person::UnsubscribedAt))
                    .col(timestamp_with_time_zone(Person::CreatedAt))
                    .col(timestamp_with_time_zone(Person::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        for (name, cols, unique) in [
            (
                "ux_person_email_normalized",
                vec![Person::EmailNormalized],
                true,
            ),
            (
                "ix_person_created_at",
                vec![Person::CreatedAt, Person::Id],
                false,
            ),
            (
                "ix_person_authorization_type",
                vec![Person::AuthorizationType, Person::Id],
                false,
            ),
            (
                "ix_person_source_type",
                vec![Person::SourceType, Person::Id],
                false,
            ),
            (
                "ix_person_unsubscribed",
                vec![Person::Unsubscribed, Person::Id],
                false,
            ),
            ("ix_person_salesforce_id", vec![Person::SalesforceId], false),
        ] {
            let mut index = Index::create();
            index.name(name).table(Person::Table);
            for col in cols {
                index.col(col);
            }
            if unique {
                index.unique();
            }
            manager.create_index(index.to_owned()).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(SubscriptionEvent::Table)
                    .col(uuid(SubscriptionEvent::Id).primary_key())
                    .col(uuid(SubscriptionEvent::PersonId))
                    .col(text(SubscriptionEvent::Kind))
                    .col(text(SubscriptionEvent::Channel))
                    .col(timestamp_with_time_zone(SubscriptionEvent::OccurredAt))
                    .col(text(SubscriptionEvent::Actor))
                    .col(text_null(SubscriptionEvent::Reason))
                    .col(date_null(SubscriptionEvent::ReconsentDate))
                    .col(text_null(SubscriptionEvent::ReconsentMethod))
                    .col(text_null(SubscriptionEvent::ReconsentEvidence))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_subscription_event_person")
                            .from(SubscriptionEvent::Table, SubscriptionEvent::PersonId)
                            .to(Person::Table, Person::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_subscription_event_person")
                    .table(SubscriptionEvent::Table)
                    .col(SubscriptionEvent::PersonId)
                    .col(SubscriptionEvent::OccurredAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditEvent::Table)
                    .col(big_integer(AuditEvent::Sequence).primary_key())
                    .col(uuid_uniq(AuditEvent::Id))
                    .col(timestamp_with_time_zone(AuditEvent::OccurredAt))
                    .col(text(AuditEvent::Actor))
                    .col(text(AuditEvent::ActorRoles))
                    .col(text(AuditEvent::Action))
                    .col(text(AuditEvent::Outcome))
                    .col(text_null(AuditEvent::Reason))
                    .col(text_null(AuditEvent::RequestId))
                    .col(text_null(AuditEvent::Details))
                    .col(integer(AuditEvent::EncodingVersion))
                    .col(text(AuditEvent::PreviousHash))
                    .col(text(AuditEvent::Hash))
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("ix_audit_event_actor", AuditEvent::Actor),
            ("ix_audit_event_action", AuditEvent::Action),
            ("ix_audit_event_outcome", AuditEvent::Outcome),
            ("ix_audit_event_occurred_at", AuditEvent::OccurredAt),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(AuditEvent::Table)
                        .col(col)
                        .col(AuditEvent::Sequence)
                        .to_owned(),
                )
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(AuditEventPerson::Table)
                    .col(big_integer(AuditEventPerson::EventSequence))
                    .col(uuid(AuditEventPerson::PersonId))
                    .col(text(AuditEventPerson::Changes))
                    .primary_key(
                        Index::create()
                            .col(AuditEventPerson::EventSequence)
                            .col(AuditEventPerson::PersonId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_audit_event_person_event")
                            .from(AuditEventPerson::Table, AuditEventPerson::EventSequence)
                            .to(AuditEvent::Table, AuditEvent::Sequence),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_audit_event_person_person")
                    .table(AuditEventPerson::Table)
                    .col(AuditEventPerson::PersonId)
                    .col(AuditEventPerson::EventSequence)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditChainHead::Table)
                    .col(integer(AuditChainHead::Id).primary_key())
                    .col(big_integer(AuditChainHead::LastSequence))
                    .col(text(AuditChainHead::LastHash))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(AuditChainHead::Table)
                    .columns([
                        AuditChainHead::Id,
                        AuditChainHead::LastSequence,
                        AuditChainHead::LastHash,
                    ])
                    .values_panic([1.into(), 0i64.into(), GENESIS_HASH.into()])
                    .to_owned(),
            )
            .await?;

        let backend = manager.get_database_backend();
        for sql in append_only_triggers(backend)? {
            manager
                .get_connection()
                .execute_raw(Statement::from_string(backend, sql))
                .await?;
        }
        Ok(())
    }
}

/// SQL that makes the audit tables refuse UPDATE and DELETE (and TRUNCATE on
/// PostgreSQL, where a row trigger does not fire for it).
fn append_only_triggers(backend: DatabaseBackend) -> Result<Vec<String>, DbErr> {
    let mut sql = Vec::new();
    match backend {
        DatabaseBackend::Postgres => {
            sql.push(
                "CREATE OR REPLACE FUNCTION consentry_audit_append_only() RETURNS trigger \
                 LANGUAGE plpgsql AS $$ BEGIN \
                 RAISE EXCEPTION 'consentry audit table % is append-only: % refused', TG_TABLE_NAME, TG_OP \
                 USING ERRCODE = 'insufficient_privilege'; END $$"
                    .to_owned(),
            );
            for table in APPEND_ONLY {
                sql.push(format!(
                    "CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} \
                     FOR EACH ROW EXECUTE FUNCTION consentry_audit_append_only()"
                ));
                sql.push(format!(
                    "CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} \
                     FOR EACH STATEMENT EXECUTE FUNCTION consentry_audit_append_only()"
                ));
            }
        }
        DatabaseBackend::Sqlite => {
            for table in APPEND_ONLY {
                for op in ["UPDATE", "DELETE"] {
                    sql.push(format!(
                        "CREATE TRIGGER {table}_no_{lower} BEFORE {op} ON {table} BEGIN \
                         SELECT RAISE(ABORT, 'consentry audit table {table} is append-only: {op} refused'); END",
                        lower = op.to_lowercase()
                    ));
                }
            }
        }
        other => {
            return Err(DbErr::Migration(format!(
                "consentry supports SQLite and PostgreSQL, not {other:?}"
            )));
        }
    }
    Ok(sql)
}

#[derive(DeriveIden)]
enum Person {
    Table,
    Id,
    FirstName,
    LastName,
    Company,
    Title,
    Email,
    EmailNormalized,
    Phone,
    Website,
    Other,
    SalesforceId,
    Facebook,
    Twitter,
    Linkedin,
    AuthorizationType,
    AuthorizationOther,
    ConsentDate,
    ProcessingPurpose,
    SourceType,
    SourceOther,
    Unsubscribed,
    UnsubscribedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum SubscriptionEvent {
    Table,
    Id,
    PersonId,
    Kind,
    Channel,
    OccurredAt,
    Actor,
    Reason,
    ReconsentDate,
    ReconsentMethod,
    ReconsentEvidence,
}

#[derive(DeriveIden)]
enum AuditEvent {
    Table,
    Sequence,
    Id,
    OccurredAt,
    Actor,
    ActorRoles,
    Action,
    Outcome,
    Reason,
    RequestId,
    Details,
    EncodingVersion,
    PreviousHash,
    Hash,
}

#[derive(DeriveIden)]
enum AuditEventPerson {
    Table,
    EventSequence,
    PersonId,
    Changes,
}

#[derive(DeriveIden)]
enum AuditChainHead {
    Table,
    Id,
    LastSequence,
    LastHash,
}
