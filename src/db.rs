//! Database connection: pool settings per backend, migrations, and write
//! transactions that never meet SQLITE_BUSY.

use std::ffi::c_int;
use std::ops::Deref;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use migration::{Migrator, MigratorTrait};
use sea_orm::sea_query::Values;
use sea_orm::sqlx::postgres::PgRow;
use sea_orm::sqlx::sqlite::SqliteRow;
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::sqlx::{AssertSqlSafe, Postgres, Row, Sqlite, query_with};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseBackend,
    DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait, SqliteTransactionMode, Statement,
    TransactionOptions, TransactionTrait,
};
use sea_query_sqlx::SqlxValues;
use tokio::sync::{Mutex, OwnedMutexGuard};
use uuid::Uuid;

use crate::audit::ChainTurn;

/// How long SQLite waits for another process's write lock.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long after a commit the checkpointer moves the WAL into the database
/// file (see [`Checkpointer`]): the commits of that time share one
/// checkpoint and its fsyncs.
const CHECKPOINT_AFTER: Duration = Duration::from_millis(100);
/// WAL pages from which a background checkpoint finishes in the writer's
/// turn, so the next write starts the WAL over (see [`Checkpointer`]). That
/// pass holds every write while it copies and flushes (5–17 ms measured
/// under 32 concurrent card edits, once the file is flushed beside the
/// writer first), so it comes once per 16,000 pages (64 MiB of WAL): at
/// 4,000 it came every 200–300 ms of that load (card edits: 3,162–3,369
/// req/s at 4,000 pages, 3,456–3,614 at 16,000, 3,444–3,588 at 32,000).
const RESTART_WAL_PAGES: i64 = 16_000;
/// WAL pages at which a committing writer checkpoints inline all the same
/// (SQLite's automatic checkpoint, default 1,000): a backstop should the
/// background checkpoints fall behind, say behind a long read. Well above
/// [`RESTART_WAL_PAGES`]: over it, every commit would checkpoint inline
/// until the WAL starts over; and above a large transaction's pages (a bulk
/// update of 100,000 people leaves about 16,600 in the WAL), which at
/// 10,000 paid for a whole checkpoint before its commit returned (that
/// update: 1.16–1.18 s at 10,000, 1.01–1.03 s at 40,000).
const INLINE_CHECKPOINT_PAGES: u32 = 40_000;
/// How long a request waits for a pooled connection (or for an unreachable
/// database) before it fails with `INTERNAL`: short enough that an outage
/// is reported well inside the request timeout.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// A pooled connection idle at least this long is checked (pinged) before a
/// request gets it; one in steady use is not, which would cost a round trip
/// per request.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(10);

/// The database handle the service layer works with.
#[derive(Clone, Debug)]
pub struct Db {
    conn: DatabaseConnection,
    /// SQLite's writer: every write transaction of this process.
    writer: Option<Writer>,
    /// SQL statements executed through this handle, for metrics and for
    /// checking that a request costs a fixed number of statements.
    statements: Arc<AtomicU64>,
    /// This process's turn at chaining committed audit events.
    chain_turn: Arc<ChainTurn>,
}

/// SQLite's writer. Write transactions take turns on `turn`, so they queue
/// in order instead of spinning on the file lock, and all run on one
/// connection of their own. A connection's page cache is dropped whenever
/// another connection has written since its last transaction, so writes
/// rotating over the read pool re-read the B-tree pages of every table and
/// index they touch, each time; the writer's cache stays warm, as only it
/// writes (measured under B3's card edits: 48 page reads per edit).
#[derive(Clone, Debug)]
struct Writer {
    conn: DatabaseConnection,
    turn: Arc<Mutex<()>>,
    /// Moves committed WAL pages into the database file (file databases).
    checkpointer: Option<Arc<Checkpointer>>,
}

/// SQLite's checkpoints, off the write path. A checkpoint writes the WAL's
/// pages into the database file and fsyncs both; run inline by the
/// committing writer every 1,000 pages (SQLite's default) it held the
/// writer, and every write queued behind it, through those fsyncs (about
/// 10 ms on this machine's disk; under 32 concurrent card edits the server
/// sat idle a sixth of the time). Here a commit schedules a checkpoint
/// [`CHECKPOINT_AFTER`] later, beside the writer, on a reader connection:
/// it copies the WAL while writes go on. Once the WAL holds
/// [`RESTART_WAL_PAGES`], a second pass in the writer's turn copies what
/// was committed meanwhile, so the WAL is wholly in the database file and
/// the next write starts it over (it would otherwise grow for as long as
/// writes never pause); that pass copies only what the first left, but it
/// holds the writer, so it runs only on a large WAL, and only after the
/// database file has been flushed beside the writer (SQLite flushes it in
/// the pass that completes the WAL, for every pass before: 40–76 ms of
/// held writes when that was the pass in the writer's turn).
#[derive(Debug)]
struct Checkpointer {
    /// The connection of the first pass (one of the readers).
    beside: sea_orm::sqlx::SqlitePool,
    /// Whether a checkpoint is scheduled and has not begun.
    scheduled: AtomicBool,
    /// Held through a checkpoint, so two never compete for SQLite's
    /// checkpoint lock (an erasure's [`Db::checkpoint`] included).
    running: Mutex<()>,
    /// The database file.
    file: PathBuf,
}

impl Checkpointer {
    /// Flushes the database file's written pages to disk, beside the
    /// writer. SQLite flushes the file only in a pass that copies the whole
    /// WAL, for every page the passes before it copied; done here first,
    /// that pass (in the writer's turn) flushes only its own pages.
    async fn sync_database_file(&self) -> Result<(), sea_orm::sqlx::Error> {
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || std::fs::File::open(file)?.sync_data())
            .await
            .map_err(|e| sea_orm::sqlx::Error::Io(std::io::Error::other(e)))??;
        Ok(())
    }
}

/// A write transaction. On SQLite it began `IMMEDIATE` and holds this
/// process's writer turn until it ends.
pub struct WriteTxn {
    txn: DatabaseTransaction,
    _turn: Option<OwnedMutexGuard<()>>,
    db: Db,
    /// Whether an audit event was appended (to be chained after commit).
    audited: AtomicBool,
}

impl Deref for WriteTxn {
    type Target = DatabaseTransaction;
    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

impl WriteTxn {
    /// Commits the transaction; then, when it appended an audit event, has
    /// the event chained in the background (`audit::chain_soon`).
    pub async fn commit(self) -> Result<(), DbErr> {
        let db = self.db.clone();
        let audited = self.audited.load(Ordering::Relaxed);
        self.commit_unchained().await?;
        if audited && cfg!(not(feature = "bench-unchained-audit")) {
            crate::audit::chain_soon(&db);
        }
        Ok(())
    }

    /// Commits the transaction and ends its writer turn, chaining nothing.
    pub(crate) async fn commit_unchained(self) -> Result<(), DbErr> {
        self.txn.commit().await?;
        drop(self._turn);
        if let Some(writer) = &self.db.writer {
            writer.checkpoint_soon();
        }
        Ok(())
    }

    /// Records that an audit event was appended in this transaction.
    pub(crate) fn mark_audited(&self) {
        self.audited.store(true, Ordering::Relaxed);
    }
}

/// A failed read, as SeaORM reports one.
fn query_error(err: sea_orm::sqlx::Error) -> DbErr {
    DbErr::Query(sea_orm::RuntimeErr::SqlxError(err.into()))
}

/// Decodes a row fetched by [`Db::stream`].
fn decode<M: FromRow, R: Columns>(row: Result<R, sea_orm::sqlx::Error>) -> Result<M, DbErr> {
    row.and_then(|row| M::from_row(&row)).map_err(query_error)
}

/// Turns off SQLite's memory statistics, once per process and before the
/// first connection opens (SQLite takes it only then). With them on, every
/// allocation SQLite makes — one per column of every row sqlx reads — takes
/// a process-wide mutex to count it; consentry reads no statistics.
fn sqlite_without_memory_statistics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: SQLITE_CONFIG_MEMSTATUS takes one int. Called once, from
        // one thread; if SQLite was already initialised it refuses with
        // SQLITE_MISUSE and changes nothing, so the statistics stay on.
        let rc = unsafe {
            libsqlite3_sys::sqlite3_config(libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS, 0 as c_int)
        };
        if rc != libsqlite3_sys::SQLITE_OK {
            tracing::debug!(code = rc, "SQLite keeps its memory statistics");
        }
    });
}

/// Turns on SQLite's query planner stability guarantee for a new
/// connection. Without it, SQLite compiles a statement again on every run
/// when a bound value could change its plan — and SeaORM binds every
/// `LIMIT` — so the prepared-statement cache would not save the parse.
async fn stable_query_plans(
    conn: &mut sea_orm::sqlx::SqliteConnection,
) -> Result<(), sea_orm::sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle();
    // SAFETY: the locked handle gives this thread sole use of a live
    // connection for the call; SQLITE_DBCONFIG_ENABLE_QPSG takes an int and
    // an int* that may be null.
    let rc = unsafe {
        libsqlite3_sys::sqlite3_db_config(
            db.as_ptr(),
            libsqlite3_sys::SQLITE_DBCONFIG_ENABLE_QPSG,
            1 as c_int,
            std::ptr::null_mut::<c_int>(),
        )
    };
    if rc == libsqlite3_sys::SQLITE_OK {
        Ok(())
    } else {
        Err(sea_orm::sqlx::Error::Configuration(
            format!("SQLite refused the query planner stability guarantee (code {rc})").into(),
        ))
    }
}

impl Db {
    /// Connects to `url` (SQLite or PostgreSQL) with settings fit for a
    /// long-running server.
    pub async fn connect(url: &str) -> Result<Db, DbErr> {
        let statements = Arc::new(AtomicU64::new(0));
        let is_sqlite = url.starts_with("sqlite:");
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let (conn, writer) = if !is_sqlite {
            (pool(url, Pool::Postgres, &statements).await?, None)
        } else if in_memory {
            // An in-memory database is one connection's: reads and writes
            // share it, and it has no WAL.
            let conn = pool(url, Pool::SqliteInMemory, &statements).await?;
            (conn.clone(), Some((conn, None)))
        } else {
            let reads = pool(url, Pool::SqliteReads, &statements).await?;
            let file = SqliteConnectOptions::from_str(url)
                .map_err(|e| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e.into())))?
                .get_filename()
                .to_owned();
            let checkpointer = Checkpointer {
                beside: reads.get_sqlite_connection_pool().clone(),
                scheduled: AtomicBool::new(false),
                running: Mutex::new(()),
                file,
            };
            let writer = pool(url, Pool::SqliteWriter, &statements).await?;
            (reads, Some((writer, Some(Arc::new(checkpointer)))))
        };
        Ok(Db {
            conn,
            writer: writer.map(|(conn, checkpointer)| Writer {
                conn,
                turn: Arc::new(Mutex::new(())),
                checkpointer,
            }),
            statements,
            chain_turn: Arc::default(),
        })
    }

    /// The connection pool, for reads.
    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// On SQLite, moves the WAL into the database file and truncates it,
    /// in this process's writer turn (best effort: a reader in another
    /// process only delays it to the next automatic checkpoint). Nothing on
    /// PostgreSQL.
    pub async fn checkpoint(&self) -> Result<(), DbErr> {
        let Some(writer) = &self.writer else {
            return Ok(());
        };
        let _running = match &writer.checkpointer {
            Some(c) => Some(c.running.lock().await),
            None => None,
        };
        let _turn = writer.turn.lock().await;
        writer
            .conn
            .execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
            .await?;
        Ok(())
    }

    /// Which backend this is.
    pub fn backend(&self) -> DatabaseBackend {
        self.conn.get_database_backend()
    }

    /// Brings the schema up to date. On PostgreSQL an advisory lock keeps
    /// several instances starting at once from migrating together.
    pub async fn migrate(&self) -> Result<(), DbErr> {
        if self.backend() == DatabaseBackend::Postgres {
            let txn = self.conn.begin().await?;
            txn.execute_raw(Statement::from_string(
                DatabaseBackend::Postgres,
                "SELECT pg_advisory_xact_lock(7243650938)",
            ))
            .await?;
            Migrator::up(&txn, None).await?;
            txn.commit().await
        } else {
            // One connection throughout: SQLite checks some DDL (ALTER TABLE
            // … RENAME) against the connection's cached schema, which
            // another connection's DROP leaves stale. Also all-or-nothing.
            let txn = self.begin_write().await?;
            Migrator::up(&*txn, None).await?;
            txn.commit_unchained().await
        }
    }

    /// Begins a write transaction.
    pub async fn begin_write(&self) -> Result<WriteTxn, DbErr> {
        match &self.writer {
            Some(writer) => {
                let turn = writer.turn.clone().lock_owned().await;
                let txn = writer
                    .conn
                    .begin_with_options(TransactionOptions {
                        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                        ..Default::default()
                    })
                    .await?;
                Ok(WriteTxn {
                    txn,
                    _turn: Some(turn),
                    db: self.clone(),
                    audited: AtomicBool::new(false),
                })
            }
            None => Ok(WriteTxn {
                txn: self.conn.begin().await?,
                _turn: None,
                db: self.clone(),
                audited: AtomicBool::new(false),
            }),
        }
    }

    /// Runs a read on the pool and decodes its rows as `M`. The statement
    /// is built by SeaORM as everywhere else; SeaORM's connection layer and
    /// row mapping are skipped: its large futures, moved on every call, and
    /// its per-column decoding (which formats the column's name, and an
    /// error message for every NULL it reads) cost more than the work of
    /// the read. For the hottest reads (a person, a page of people); counted
    /// like every other statement.
    pub async fn read<M: FromRow + Send>(&self, stmt: &Statement) -> Result<Vec<M>, DbErr> {
        self.stream(stmt).try_collect().await
    }

    /// Runs a read of at most one row on the pool and decodes it as `M` (see
    /// [`Db::read`]). sqlx fetches one row on the pool without the stream
    /// over the pool that [`Db::read`] goes through, whose state it moves
    /// into a box of its own (7k instructions of a `person(id)` request).
    pub async fn read_one<M: FromRow + Send>(&self, stmt: &Statement) -> Result<Option<M>, DbErr> {
        let (sql, values) = self.counted(stmt);
        match self.backend() {
            DatabaseBackend::Postgres => query_with(sql, values)
                .fetch_optional(self.conn.get_postgres_connection_pool())
                .await
                .transpose()
                .map(decode::<M, _>)
                .transpose(),
            _ => query_with(sql, values)
                .fetch_optional(self.conn.get_sqlite_connection_pool())
                .await
                .transpose()
                .map(decode::<M, _>)
                .transpose(),
        }
    }

    /// Runs a read on the pool and streams its rows, decoded as `M`, from a
    /// cursor (see [`Db::read`]): for reads of any size (the CSV export).
    pub fn stream<'a, M: FromRow + Send + 'a>(
        &'a self,
        stmt: &'a Statement,
    ) -> BoxStream<'a, Result<M, DbErr>> {
        let (sql, values) = self.counted(stmt);
        match self.backend() {
            DatabaseBackend::Postgres => query_with(sql, values)
                .fetch(self.conn.get_postgres_connection_pool())
                .map(decode::<M, _>)
                .boxed(),
            _ => query_with(sql, values)
                .fetch(self.conn.get_sqlite_connection_pool())
                .map(decode::<M, _>)
                .boxed(),
        }
    }

    /// `stmt`'s SQL and values for sqlx, counted as a statement run.
    fn counted<'a>(&self, stmt: &'a Statement) -> (AssertSqlSafe<&'a str>, SqlxValues) {
        self.statements.fetch_add(1, Ordering::Relaxed);
        (
            AssertSqlSafe(stmt.sql.as_str()),
            SqlxValues(stmt.values.clone().unwrap_or(Values(Vec::new()))),
        )
    }

    /// A read transaction on the pool: every read in it sees the database
    /// as the first one saw it (SQLite: a deferred `BEGIN`, whose snapshot
    /// is taken by its first read).
    pub async fn begin_read(&self) -> Result<DatabaseTransaction, DbErr> {
        self.conn.begin().await
    }

    /// This process's turn at chaining audit events.
    pub(crate) fn chain_turn(&self) -> &ChainTurn {
        &self.chain_turn
    }

    /// How many SQL statements have run through this handle so far.
    pub fn statement_count(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.conn.ping().await
    }
}

impl Writer {
    /// Has the WAL moved into the database file shortly (see
    /// [`Checkpointer`]); a checkpoint already scheduled covers this commit.
    fn checkpoint_soon(&self) {
        let Some(checkpointer) = &self.checkpointer else {
            return;
        };
        if checkpointer.scheduled.swap(true, Ordering::SeqCst) {
            return;
        }
        let writer = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(CHECKPOINT_AFTER).await;
            if let Err(e) = writer.checkpoint().await {
                tracing::warn!(error = %e, "SQLite checkpoint failed; the next commit retries");
            }
        });
    }

    /// One background checkpoint: beside the writer, then — once the WAL
    /// has grown to [`RESTART_WAL_PAGES`] — in its turn. A pass that a
    /// reader's snapshot keeps from copying everything (SQLite answers busy,
    /// not an error) leaves the rest to the next one. Run on the pools
    /// directly: maintenance, not a request's statements.
    async fn checkpoint(&self) -> Result<(), sea_orm::sqlx::Error> {
        let Some(checkpointer) = &self.checkpointer else {
            return Ok(());
        };
        let _running = checkpointer.running.lock().await;
        // Commits from here on schedule the next checkpoint.
        checkpointer.scheduled.store(false, Ordering::SeqCst);
        let wal_pages = passive_checkpoint(&checkpointer.beside).await?;
        if wal_pages >= RESTART_WAL_PAGES {
            // Flush first, then copy what was committed meanwhile, so the
            // pass in the writer's turn has little to copy or flush.
            checkpointer.sync_database_file().await?;
            passive_checkpoint(&checkpointer.beside).await?;
            let _turn = self.turn.lock().await;
            passive_checkpoint(self.conn.get_sqlite_connection_pool()).await?;
        }
        Ok(())
    }
}

/// Runs a passive checkpoint on `pool`; returns how many pages the WAL holds.
async fn passive_checkpoint(pool: &sea_orm::sqlx::SqlitePool) -> Result<i64, sea_orm::sqlx::Error> {
    let (_busy, wal_pages, _copied): (i64, i64, i64) =
        sea_orm::sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(pool)
            .await?;
    Ok(wal_pages)
}

/// The pools a [`Db`] opens.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pool {
    Postgres,
    /// SQLite's readers.
    SqliteReads,
    /// SQLite's one writer connection (see [`Writer`]).
    SqliteWriter,
    /// An in-memory SQLite database: one connection for everything.
    SqliteInMemory,
}

/// Opens one pool of `kind` on `url`, counting its statements in
/// `statements`.
async fn pool(
    url: &str,
    kind: Pool,
    statements: &Arc<AtomicU64>,
) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options.sqlx_logging(false);
    match kind {
        Pool::Postgres => {
            options.max_connections(16).min_connections(1);
        }
        Pool::SqliteReads | Pool::SqliteWriter | Pool::SqliteInMemory => {
            sqlite_without_memory_statistics();
            let size = if kind == Pool::SqliteReads { 8 } else { 1 };
            options
                .max_connections(size)
                .min_connections(1)
                .map_sqlx_sqlite_opts(move |o| {
                    let o = o
                        .journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Normal)
                        .busy_timeout(SQLITE_BUSY_TIMEOUT)
                        .foreign_keys(true)
                        // Deleted content is overwritten, so erased data leaves the file.
                        .pragma("secure_delete", "ON");
                    if kind == Pool::SqliteWriter {
                        // The writer's checkpoints run in the background.
                        // Its temporary files stay in memory: the journal of
                        // a statement that changes many rows (a bulk
                        // update's chunk) holds their pages as they were,
                        // which SQLite otherwise writes to a file in the
                        // system's temporary directory, personal data
                        // included (for 100,000 people, 27,300 pages in
                        // 54,600 writes).
                        o.pragma("wal_autocheckpoint", INLINE_CHECKPOINT_PAGES.to_string())
                            .pragma("temp_store", "MEMORY")
                    } else {
                        o
                    }
                })
                .map_sqlx_sqlite_pool_opts(move |p| {
                    let p = p.after_connect(|conn, _| Box::pin(stable_query_plans(conn)));
                    if kind == Pool::SqliteReads {
                        p
                    } else {
                        // Kept open: an in-memory database lives only as long
                        // as its connection, and the writer's page cache
                        // (the reason it exists) only as long as its own.
                        p.idle_timeout(None).max_lifetime(None)
                    }
                });
        }
    }
    options
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire_if_idle_for(PING_IF_IDLE_FOR);
    let mut conn = Database::connect(options).await?;
    let counter = statements.clone();
    conn.set_metric_callback(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    Ok(conn)
}

/// `column IN (ids)`, for lists of up to thousands of ids. On SQLite the
/// ids go as one JSON array of hex strings that SQLite unpacks
/// (`json_each`, `unhex` to the stored 16 bytes) rather than one bound
/// parameter each: 5,000-id lists (a bulk update's key lookups and its
/// not-found check), built as SeaORM values and bound one by one, cost
/// more than SQLite's lookups (`unhex` needs
/// SQLite 3.41; sqlx's bundled library is 3.51). On PostgreSQL, the bound
/// list.
pub fn uuid_in<C: ColumnTrait>(
    backend: DatabaseBackend,
    column: C,
    ids: impl IntoIterator<Item = Uuid>,
) -> sea_orm::sea_query::Expr {
    if backend != DatabaseBackend::Sqlite {
        return column.is_in(ids);
    }
    let json = uuid_json(ids);
    sea_orm::sea_query::Expr::cust_with_exprs(
        // SQLite's builder puts the expressions at its `?` marks, in order.
        "? IN (SELECT unhex(value) FROM json_each(?))",
        [
            sea_orm::sea_query::Expr::col(column.as_column_ref()),
            sea_orm::sea_query::Expr::val(json),
        ],
    )
}

/// `ids` as the JSON array SQLite reads them from (see [`uuid_in`]): 32
/// hex digits each, which `unhex` turns into the stored 16 bytes.
pub fn uuid_json(ids: impl IntoIterator<Item = Uuid>) -> String {
    let mut json = String::from("[");
    for (i, id) in ids.into_iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push('"');
        json.push_str(id.simple().encode_lower(&mut Uuid::encode_buffer()));
        json.push('"');
    }
    json.push(']');
    json
}

/// One multi-row INSERT into `table` of `rows`, each the values of
/// `columns` in order, every value bound: as `?` on SQLite (so that the
/// statement can also run in a batch with others), as `$1, $2, …` on
/// PostgreSQL. The `shared` columns have one value for every row, bound
/// once: the rows come as a `VALUES` list the INSERT selects from. Used
/// where thousands of rows go at once (an event's people, new person keys)
/// in place of SeaORM's `insert_many`, which converts each row's model
/// first and cost more than the insert itself.
pub fn insert_statement<const M: usize, const N: usize>(
    backend: DatabaseBackend,
    table: &str,
    shared: [(&str, sea_orm::Value); M],
    columns: [&str; N],
    rows: impl ExactSizeIterator<Item = [sea_orm::Value; N]>,
) -> Statement {
    use std::fmt::Write;
    let mut values = Vec::with_capacity(M + rows.len() * N);
    let mut marker = |sql: &mut String, value: sea_orm::Value| {
        values.push(value);
        match backend {
            DatabaseBackend::Postgres => {
                let _ = write!(sql, "${}", values.len());
            }
            _ => sql.push('?'),
        }
    };
    let names: Vec<&str> = shared
        .iter()
        .map(|(name, _)| *name)
        .chain(columns)
        .collect();
    let mut sql = format!("INSERT INTO {table} ({}) SELECT ", names.join(", "));
    sql.reserve(rows.len() * (N * 4 + 4));
    for (name, value) in shared {
        marker(&mut sql, value);
        let _ = write!(sql, " AS {name}, ");
    }
    for j in 1..=N {
        let _ = write!(sql, "{}column{j}", if j > 1 { ", " } else { "" });
    }
    sql.push_str(" FROM (VALUES ");
    for (i, row) in rows.enumerate() {
        sql.push_str(if i == 0 { "(" } else { ", (" });
        for (j, value) in row.into_iter().enumerate() {
            if j > 0 {
                sql.push_str(", ");
            }
            marker(&mut sql, value);
        }
        sql.push(')');
    }
    sql.push_str(") AS v");
    Statement::from_sql_and_values(backend, sql, values)
}

/// Inserts `rows` with one multi-row INSERT per `per_statement` rows
/// (bounded so a statement stays within the backends' bind limits).
pub async fn insert_in_chunks<A, C>(
    conn: &C,
    rows: impl IntoIterator<Item = A>,
    per_statement: usize,
) -> Result<(), DbErr>
where
    A: ActiveModelTrait,
    C: ConnectionTrait,
{
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<A> = rows.by_ref().take(per_statement).collect();
        A::Entity::insert_many(chunk)
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// Runs `stmt` on `conn` (a transaction, say): a SQLite statement whose
/// one row is one JSON array SQLite builds (`json_group_array`), and
/// decodes its elements as `T`. sqlx hands each row from its SQLite thread
/// to the runtime on its own; for reads of thousands of rows (a bulk
/// update's chunk, a page of the CSV export) those hand-offs cost more than
/// SQLite's reading the rows, and one row per read costs one.
pub async fn query_json_array<T: serde::de::DeserializeOwned, C: ConnectionTrait>(
    conn: &C,
    stmt: Statement,
) -> Result<Vec<T>, DbErr> {
    parse_json_array(&query_json(conn, stmt).await?)
}

/// The JSON text `stmt` returns (see [`query_json_array`]), for rows that
/// borrow their text from it ([`parse_json_array`]).
pub async fn query_json<C: ConnectionTrait>(conn: &C, stmt: Statement) -> Result<String, DbErr> {
    conn.query_one_raw(stmt)
        .await?
        .ok_or_else(|| DbErr::Custom("a JSON aggregate returned no row".into()))?
        .try_get_by_index(0)
}

/// The elements of the JSON array `json` as `T`.
pub fn parse_json_array<'a, T: serde::Deserialize<'a>>(json: &'a str) -> Result<Vec<T>, DbErr> {
    serde_json::from_str(json).map_err(|e| DbErr::Json(e.to_string()))
}

/// Deserializes a text that may be null, borrowing it from the input where
/// it holds no escapes (serde's own `Option<Cow<str>>` always copies): the
/// text fields of rows read as JSON ([`parse_json_array`]).
pub fn borrowed_text<'de: 'a, 'a, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<std::borrow::Cow<'a, str>>, D::Error> {
    #[derive(serde::Deserialize)]
    struct Text<'a>(#[serde(borrow)] std::borrow::Cow<'a, str>);
    let text: Option<Text<'a>> = serde::Deserialize::deserialize(deserializer)?;
    Ok(text.map(|t| t.0))
}

/// Deserializes a timestamp stored in SQLite as text (consentry stores no
/// other form) as sqlx reads it (`sqlx-sqlite`'s
/// `decode_datetime_from_text`): RFC 3339, which is how sqlx writes a
/// `DateTime<Utc>`, then SQLite's own date-time formats, a format without
/// an offset being UTC. For rows SQLite returns in JSON
/// ([`query_json_array`]), so that they decode as they would column by
/// column.
pub fn sqlite_timestamp<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<DateTime<Utc>, D::Error> {
    struct Text;
    impl serde::de::Visitor<'_> for Text {
        type Value = DateTime<Utc>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a timestamp as SQLite stores it")
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
            parse_sqlite_timestamp(text)
                .ok_or_else(|| E::custom(format!("invalid datetime: {text}")))
        }
    }
    deserializer.deserialize_str(Text)
}

fn parse_sqlite_timestamp(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    const FORMATS: [&str; 12] = [
        "%F %T%.f",
        "%F %R",
        "%F %RZ",
        "%F %R%:z",
        "%F %T%.fZ",
        "%F %T%.f%:z",
        "%FT%R",
        "%FT%RZ",
        "%FT%R%:z",
        "%FT%T%.f",
        "%FT%T%.fZ",
        "%FT%T%.f%:z",
    ];
    FORMATS.iter().find_map(|format| {
        DateTime::parse_from_str(text, format)
            .map(|t| t.with_timezone(&Utc))
            .or_else(|_| NaiveDateTime::parse_from_str(text, format).map(|t| t.and_utc()))
            .ok()
    })
}

/// Runs `stmt` on `conn` (a transaction, say) and decodes its first row
/// as `M`, as [`Db::read`] decodes: SeaORM's row mapping formats an error
/// message for every NULL column it reads.
pub async fn query_one_as<M: FromRow, C: ConnectionTrait>(
    conn: &C,
    stmt: Statement,
) -> Result<Option<M>, DbErr> {
    conn.query_one_raw(stmt)
        .await?
        .map(|row| decode_result(&row))
        .transpose()
}

/// Runs `stmt` on `conn` and decodes its rows as `M` (see [`query_one_as`]).
pub async fn query_all_as<M: FromRow, C: ConnectionTrait>(
    conn: &C,
    stmt: Statement,
) -> Result<Vec<M>, DbErr> {
    conn.query_all_raw(stmt)
        .await?
        .iter()
        .map(decode_result)
        .collect()
}

/// Decodes a row SeaORM returned as `M`.
fn decode_result<M: FromRow>(row: &sea_orm::QueryResult) -> Result<M, DbErr> {
    let decoded = if let Some(row) = row.try_as_sqlite_row() {
        M::from_row(row)
    } else if let Some(row) = row.try_as_pg_row() {
        M::from_row(row)
    } else {
        return Err(DbErr::Custom(
            "a row of neither SQLite nor PostgreSQL".into(),
        ));
    };
    decoded.map_err(query_error)
}

/// The columns of a row from the `n`-th on, as a row of their own: for a
/// statement that returns two types' columns side by side.
pub struct Skip<'r, R>(pub &'r R, pub usize);

impl<R: Columns> Columns for Skip<'_, R> {
    fn get<T: Decodable>(&self, i: usize) -> Result<T, sea_orm::sqlx::Error> {
        self.0.get(self.1 + i)
    }
}

/// A value both backends' drivers decode.
pub trait Decodable:
    for<'r> sea_orm::sqlx::Decode<'r, Postgres>
    + sea_orm::sqlx::Type<Postgres>
    + for<'r> sea_orm::sqlx::Decode<'r, Sqlite>
    + sea_orm::sqlx::Type<Sqlite>
{
}

impl<T> Decodable for T where
    T: for<'r> sea_orm::sqlx::Decode<'r, Postgres>
        + sea_orm::sqlx::Type<Postgres>
        + for<'r> sea_orm::sqlx::Decode<'r, Sqlite>
        + sea_orm::sqlx::Type<Sqlite>
{
}

/// A result row of either backend, read by column position.
pub trait Columns {
    /// The value of the `i`-th column (from 0).
    fn get<T: Decodable>(&self, i: usize) -> Result<T, sea_orm::sqlx::Error>;
}

impl Columns for PgRow {
    fn get<T: Decodable>(&self, i: usize) -> Result<T, sea_orm::sqlx::Error> {
        self.try_get(i)
    }
}

impl Columns for SqliteRow {
    fn get<T: Decodable>(&self, i: usize) -> Result<T, sea_orm::sqlx::Error> {
        self.try_get(i)
    }
}

/// A type decoded from a row of a statement built for it (see `Db::read`).
pub trait FromRow: Sized {
    /// Decodes one row.
    fn from_row(row: &impl Columns) -> Result<Self, sea_orm::sqlx::Error>;
}

#[cfg(test)]
mod tests {
    use std::ffi::c_int;

    use super::Db;

    #[tokio::test]
    async fn sqlite_connections_have_the_query_planner_stability_guarantee() {
        let db = Db::connect("sqlite::memory:").await.unwrap();
        let mut conn = db
            .conn()
            .get_sqlite_connection_pool()
            .acquire()
            .await
            .unwrap();
        let mut handle = conn.lock_handle().await.unwrap();
        let mut on: c_int = -1;
        // SAFETY: sole use of a live connection; -1 reads the setting into `on`.
        let rc = unsafe {
            libsqlite3_sys::sqlite3_db_config(
                handle.as_raw_handle().as_ptr(),
                libsqlite3_sys::SQLITE_DBCONFIG_ENABLE_QPSG,
                -1 as c_int,
                &mut on as *mut c_int,
            )
        };
        assert_eq!(rc, libsqlite3_sys::SQLITE_OK);
        assert_eq!(on, 1);
    }

    /// The writer keeps its temporary files in memory: a statement's journal
    /// holds the pages it changes as they were (people's data), and a bulk
    /// update of 100,000 people wrote 27,300 pages of it to a file in the
    /// system's temporary directory.
    #[tokio::test]
    async fn the_sqlite_writer_keeps_its_temporary_files_in_memory() {
        use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};

        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let db = Db::connect(&url).await.unwrap();
        let txn = db.begin_write().await.unwrap();
        let row = txn
            .query_one_raw(Statement::from_string(
                DatabaseBackend::Sqlite,
                "PRAGMA temp_store",
            ))
            .await
            .unwrap()
            .unwrap();
        // 2: MEMORY.
        assert_eq!(row.try_get_by_index::<i32>(0).unwrap(), 2);
    }

    /// Timestamps read from JSON decode as sqlx decodes the same text read
    /// from a column, in every text form SQLite and sqlx know.
    #[tokio::test]
    async fn timestamps_in_json_decode_as_sqlx_decodes_the_column() {
        use chrono::{DateTime, Utc};
        use sea_orm::sqlx::{Row, query};

        #[derive(serde::Deserialize)]
        struct At(#[serde(deserialize_with = "super::sqlite_timestamp")] DateTime<Utc>);

        let db = Db::connect("sqlite::memory:").await.unwrap();
        let pool = db.conn().get_sqlite_connection_pool();
        for text in [
            "2026-12-01T21:50:00.123456+00:00",
            "2026-12-01T21:50:00+02:00",
            "2026-12-01T21:50:00Z",
            "2026-12-01 21:50:00.9996",
            "2026-12-01 21:50",
            "2026-12-01 21:50Z",
            "2026-12-01 21:50-05:30",
            "2026-12-01 21:50:59.5Z",
            "2026-12-01 21:50:59.5+01:00",
            "2026-12-01T21:50",
            "2026-12-01T21:50Z",
            "2026-12-01T21:50+01:00",
            "2026-12-01T21:50:07.25",
        ] {
            let column: DateTime<Utc> = query("SELECT ?")
                .bind(text)
                .fetch_one(pool)
                .await
                .unwrap()
                .get(0);
            let At(json) = serde_json::from_value(serde_json::json!(text)).unwrap();
            assert_eq!(json, column, "{text}");
        }
        assert!(serde_json::from_value::<At>(serde_json::json!("yesterday")).is_err());
    }

    /// Text read from JSON is borrowed from it unless it holds escapes.
    #[test]
    fn text_in_json_is_borrowed_where_it_can_be() {
        use std::borrow::Cow;

        #[derive(serde::Deserialize)]
        struct Texts<'a>(
            #[serde(borrow, deserialize_with = "super::borrowed_text")] Option<Cow<'a, str>>,
            #[serde(borrow, deserialize_with = "super::borrowed_text")] Option<Cow<'a, str>>,
            #[serde(borrow, deserialize_with = "super::borrowed_text")] Option<Cow<'a, str>>,
        );
        let Texts(plain, escaped, null) =
            serde_json::from_str(r#"["Zoë", "say \"hi\"", null]"#).unwrap();
        assert!(matches!(plain, Some(Cow::Borrowed("Zoë"))));
        assert!(matches!(escaped.as_deref(), Some("say \"hi\"")));
        assert!(matches!(escaped, Some(Cow::Owned(_))));
        assert_eq!(null, None);
    }
}
