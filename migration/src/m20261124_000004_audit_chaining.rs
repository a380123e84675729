//! Audit events are written unchained in the transaction of their change and
//! chained (given their sequence, previous hash and hash) right after commit,
//! so concurrent writers no longer queue on the chain head through each
//! commit.
//!
//! `audit_event` is keyed by its id; `sequence`, `previous_hash` and `hash`
//! are empty until the event is chained, and the triggers allow exactly one
//! UPDATE of a row: the one that chains it, changing nothing else. Person rows
//! point at their event by id. Existing events keep their sequence and
//! hashes (the hash never covered the person rows' link column).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{DatabaseBackend, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The columns an event keeps from creation; chaining must not change them.
const FIXED_COLUMNS: [&str; 10] = [
    "id",
    "occurred_at",
    "actor",
    "actor_roles",
    "action",
    "outcome",
    "reason",
    "request_id",
    "details",
    "encoding_version",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let run = |sql: String| async move {
            manager
                .get_connection()
                .execute_raw(Statement::from_string(backend, sql))
                .await
                .map(|_| ())
        };
        for sql in drop_old_triggers(backend)? {
            run(sql).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(NewEvent::Table)
                    .col(uuid(AuditEvent::Id).primary_key())
                    .col(big_integer_null(AuditEvent::Sequence))
                    .col(timestamp_with_time_zone(AuditEvent::OccurredAt))
                    .col(text(AuditEvent::Actor))
                    .col(text(AuditEvent::ActorRoles))
                    .col(text(AuditEvent::Action))
                    .col(text(AuditEvent::Outcome))
                    .col(text_null(AuditEvent::Reason))
                    .col(text_null(AuditEvent::RequestId))
                    .col(text_null(AuditEvent::Details))
                    .col(integer(AuditEvent::EncodingVersion))
                    .col(text_null(AuditEvent::PreviousHash))
                    .col(text_null(AuditEvent::Hash))
                    .to_owned(),
            )
            .await?;
        run(format!(
            "INSERT INTO audit_event_v2 (sequence, previous_hash, hash, {fixed}) \
             SELECT sequence, previous_hash, hash, {fixed} FROM audit_event",
            fixed = FIXED_COLUMNS.join(", ")
        ))
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(NewEventPerson::Table)
                    .col(uuid(AuditEventPerson::EventId))
                    .col(uuid(AuditEventPerson::PersonId))
                    .col(text(AuditEventPerson::Changes))
                    .primary_key(
                        Index::create()
                            .col(AuditEventPerson::EventId)
                            .col(AuditEventPerson::PersonId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_audit_event_person_event_id")
                            .from(NewEventPerson::Table, AuditEventPerson::EventId)
                            .to(NewEvent::Table, AuditEvent::Id),
                    )
                    .to_owned(),
            )
            .await?;
        run(
            "INSERT INTO audit_event_person_v2 (event_id, person_id, changes) \
             SELECT e.id, p.person_id, p.changes FROM audit_event_person p \
             JOIN audit_event e ON e.sequence = p.event_sequence"
                .to_owned(),
        )
        .await?;

        run("DROP TABLE audit_event_person".to_owned()).await?;
        run("DROP TABLE audit_event".to_owned()).await?;
        run("ALTER TABLE audit_event_v2 RENAME TO audit_event".to_owned()).await?;
        run("ALTER TABLE audit_event_person_v2 RENAME TO audit_event_person".to_owned()).await?;

        // Chained events in chain order; unchained ones (NULL) are not unique.
        run("CREATE UNIQUE INDEX ux_audit_event_sequence ON audit_event (sequence)".to_owned())
            .await?;
        // The chainer's queue: only unchained events, in id (creation) order.
        run(
            "CREATE INDEX ix_audit_event_unchained ON audit_event (id) WHERE sequence IS NULL"
                .to_owned(),
        )
        .await?;
        for (name, col) in [
            ("ix_audit_event_actor", "actor"),
            ("ix_audit_event_action", "action"),
            ("ix_audit_event_outcome", "outcome"),
            ("ix_audit_event_occurred_at", "occurred_at"),
        ] {
            run(format!(
                "CREATE INDEX {name} ON audit_event ({col}, sequence)"
            ))
            .await?;
        }
        run(
            "CREATE INDEX ix_audit_event_person_person ON audit_event_person (person_id, event_id)"
                .to_owned(),
        )
        .await?;

        for sql in chaining_triggers(backend)? {
            run(sql).await?;
        }
        Ok(())
    }
}

fn unsupported(backend: DatabaseBackend) -> DbErr {
    DbErr::Migration(format!(
        "consentry supports SQLite and PostgreSQL, not {backend:?}"
    ))
}

/// The first migration's triggers (they refuse every UPDATE).
fn drop_old_triggers(backend: DatabaseBackend) -> Result<Vec<String>, DbErr> {
    let mut sql = Vec::new();
    for table in ["audit_event", "audit_event_person"] {
        match backend {
            DatabaseBackend::Postgres => {
                for name in ["append_only", "no_truncate"] {
                    sql.push(format!("DROP TRIGGER IF EXISTS {table}_{name} ON {table}"));
                }
            }
            DatabaseBackend::Sqlite => {
                for name in ["no_update", "no_delete"] {
                    sql.push(format!("DROP TRIGGER IF EXISTS {table}_{name}"));
                }
            }
            other => return Err(unsupported(other)),
        }
    }
    Ok(sql)
}

/// Person rows: never changed or removed. Events: never removed, changed
/// only once, by chaining — an unchained row gets its sequence, previous hash
/// and hash, and every other column stays as it was.
fn chaining_triggers(backend: DatabaseBackend) -> Result<Vec<String>, DbErr> {
    let unchanged = |new: &str, old: &str, op: &str| {
        FIXED_COLUMNS
            .iter()
            .map(|c| format!("{new}.{c} {op} {old}.{c}"))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
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
            sql.push(format!(
                "CREATE OR REPLACE FUNCTION consentry_audit_chain_only() RETURNS trigger \
                 LANGUAGE plpgsql AS $$ BEGIN \
                 IF TG_OP = 'UPDATE' AND OLD.sequence IS NULL AND NEW.sequence IS NOT NULL \
                 AND NEW.previous_hash IS NOT NULL AND NEW.hash IS NOT NULL AND {same} THEN \
                 RETURN NEW; END IF; \
                 RAISE EXCEPTION 'consentry audit table % is append-only: % refused', TG_TABLE_NAME, TG_OP \
                 USING ERRCODE = 'insufficient_privilege'; END $$",
                same = unchanged("NEW", "OLD", "IS NOT DISTINCT FROM"),
            ));
            sql.push(
                "CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event \
                 FOR EACH ROW EXECUTE FUNCTION consentry_audit_chain_only()"
                    .to_owned(),
            );
            sql.push(
                "CREATE TRIGGER audit_event_person_append_only BEFORE UPDATE OR DELETE \
                 ON audit_event_person FOR EACH ROW EXECUTE FUNCTION consentry_audit_append_only()"
                    .to_owned(),
            );
            for table in ["audit_event", "audit_event_person"] {
                sql.push(format!(
                    "CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} \
                     FOR EACH STATEMENT EXECUTE FUNCTION consentry_audit_append_only()"
                ));
            }
        }
        DatabaseBackend::Sqlite => {
            let refuse = |table: &str, op: &str| {
                format!(
                    "SELECT RAISE(ABORT, 'consentry audit table {table} is append-only: {op} refused')"
                )
            };
            sql.push(format!(
                "CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event \
                 WHEN NOT (OLD.sequence IS NULL AND NEW.sequence IS NOT NULL \
                 AND NEW.previous_hash IS NOT NULL AND NEW.hash IS NOT NULL AND {same}) \
                 BEGIN {refuse}; END",
                same = unchanged("NEW", "OLD", "IS"),
                refuse = refuse("audit_event", "UPDATE"),
            ));
            sql.push(format!(
                "CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event BEGIN {}; END",
                refuse("audit_event", "DELETE")
            ));
            for op in ["UPDATE", "DELETE"] {
                sql.push(format!(
                    "CREATE TRIGGER audit_event_person_no_{lower} BEFORE {op} ON audit_event_person \
                     BEGIN {}; END",
                    refuse("audit_event_person", op),
                    lower = op.to_lowercase()
                ));
            }
        }
        other => return Err(unsupported(other)),
    }
    Ok(sql)
}

#[derive(DeriveIden)]
enum NewEvent {
    #[sea_orm(iden = "audit_event_v2")]
    Table,
}

#[derive(DeriveIden)]
enum NewEventPerson {
    #[sea_orm(iden = "audit_event_person_v2")]
    Table,
}

#[derive(DeriveIden)]
enum AuditEvent {
    Id,
    Sequence,
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
    EventId,
    PersonId,
    Changes,
}
