//! Notification channels and their deliveries: [`PostgresChannelRepository`] and
//! [`PostgresDeliveryStore`].

use std::sync::Arc;

use async_trait::async_trait;
use diesel::dsl::IsNotNull;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use rosetta_domain::{
    ChannelId, ChannelName, ChannelPatch, ChannelTarget, ChannelUrl, Delivery, DeliveryId, NewChannel,
    NotificationChannel, Page, PageRequest, Patch, SigningSecret, Timestamp,
};
use rosetta_ports::EntityKind;
use rosetta_ports::alerts::{ChannelRepository, DeliveryAttempt, DeliveryStore, PendingDelivery};
use rosetta_ports::jobs::{LeaseOwner, Next, Queue};
use rosetta_ports::outbound::{RepositoryError, SecretCipher};

use crate::alert::AlertRow;
use crate::error::{CorruptRow, Failure, StoredRow, name_conflict, not_found};
use crate::lease::complete_in;
use crate::paging::{offset_limit, total_count};
use crate::schema::constraints::NOTIFICATION_CHANNELS_NAME_KEY;
use crate::schema::{alerts, deliveries, notification_channels};
use crate::secrets::{signing_secret_slot, url_slot};
use crate::store::PostgresStore;

/// A channel as read back: secrets only as flags.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = notification_channels, check_for_backend(Pg))]
struct ChannelRow {
    id: i64,
    name: String,
    kind: String,
    url_host: String,
    #[diesel(select_expression = notification_channels::signing_secret_sealed.is_not_null())]
    #[diesel(select_expression_type = IsNotNull<notification_channels::signing_secret_sealed>)]
    has_signing_secret: bool,
    min_severity: String,
    enabled: bool,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl ChannelRow {
    fn into_domain(self) -> Result<NotificationChannel, CorruptRow> {
        let row = StoredRow::new("notification_channels", self.id);
        Ok(NotificationChannel {
            id: ChannelId::new(self.id),
            name: row.field("name", ChannelName::parse(self.name))?,
            kind: row.field("kind", self.kind.parse())?,
            url_host: self.url_host,
            has_signing_secret: self.has_signing_secret,
            min_severity: row.field("min_severity", self.min_severity.parse())?,
            enabled: self.enabled,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// The sealed secrets of a channel.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = notification_channels, check_for_backend(Pg))]
struct SealedRow {
    url_sealed: Option<Vec<u8>>,
    signing_secret_sealed: Option<Vec<u8>>,
}

#[derive(Insertable)]
#[diesel(table_name = notification_channels)]
struct NewChannelRow<'a> {
    name: &'a str,
    kind: &'a str,
    url_host: &'a str,
    min_severity: &'a str,
    enabled: bool,
    created_at: Timestamp,
    updated_at: Timestamp,
}

#[derive(AsChangeset)]
#[diesel(table_name = notification_channels)]
struct ChannelChangeset<'a> {
    name: Option<&'a str>,
    kind: Option<&'a str>,
    url_sealed: Option<Option<Vec<u8>>>,
    url_host: Option<&'a str>,
    signing_secret_sealed: Option<Option<Vec<u8>>>,
    min_severity: Option<&'a str>,
    enabled: Option<bool>,
    updated_at: Timestamp,
}

async fn find_channel(conn: &mut AsyncPgConnection, id: i64) -> Result<NotificationChannel, Failure> {
    let row = notification_channels::table
        .find(id)
        .select(ChannelRow::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| not_found(EntityKind::NotificationChannel, id))?;
    Ok(row.into_domain()?)
}

/// Opens a channel's secrets.
fn open_target(
    cipher: &dyn SecretCipher,
    channel: NotificationChannel,
    sealed: SealedRow,
) -> Result<ChannelTarget, String> {
    let id = channel.id.get();
    let url_sealed = sealed.url_sealed.ok_or("the channel has no stored url")?;
    let url = cipher.open(&url_sealed, url_slot(id)).map_err(|e| format!("cannot decrypt url: {e}"))?;
    let url = ChannelUrl::parse(url.expose()).map_err(|e| format!("stored url: {e}"))?;
    let signing_secret = sealed
        .signing_secret_sealed
        .map(|bytes| {
            let secret = cipher
                .open(&bytes, signing_secret_slot(id))
                .map_err(|e| format!("cannot decrypt signing_secret: {e}"))?;
            SigningSecret::parse(secret.expose()).map_err(|e| format!("stored signing_secret: {e}"))
        })
        .transpose()?;
    Ok(ChannelTarget { channel, url, signing_secret })
}

/// [`ChannelRepository`] over the metadata database; URLs and signing secrets sealed with the
/// given cipher.
#[derive(Clone)]
pub struct PostgresChannelRepository {
    store: PostgresStore,
    cipher: Arc<dyn SecretCipher>,
}

impl std::fmt::Debug for PostgresChannelRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresChannelRepository").field("store", &self.store).finish_non_exhaustive()
    }
}

impl PostgresChannelRepository {
    /// A repository over `store` that seals secrets with `cipher`.
    pub fn new(store: PostgresStore, cipher: Arc<dyn SecretCipher>) -> Self {
        Self { store, cipher }
    }
}

#[async_trait]
impl ChannelRepository for PostgresChannelRepository {
    async fn create(&self, new: NewChannel, now: Timestamp) -> Result<NotificationChannel, RepositoryError> {
        let cipher = Arc::clone(&self.cipher);
        let mut conn = self.store.connection().await?;
        // The secrets' slots are bound to the row id: insert, then seal and store them.
        let result = conn
            .transaction::<_, Failure, _>(async move |conn| {
                let id = diesel::insert_into(notification_channels::table)
                    .values(NewChannelRow {
                        name: new.name.as_str(),
                        kind: new.kind.as_str(),
                        url_host: new.url.host(),
                        min_severity: new.min_severity.as_str(),
                        enabled: new.enabled,
                        created_at: now,
                        updated_at: now,
                    })
                    .returning(notification_channels::id)
                    .get_result::<i64>(conn)
                    .await
                    .map_err(|e| {
                        name_conflict(
                            e,
                            NOTIFICATION_CHANNELS_NAME_KEY,
                            EntityKind::NotificationChannel,
                            new.name.as_str(),
                        )
                    })?;
                let url = cipher.seal(new.url.secret(), url_slot(id))?;
                let secret = new
                    .signing_secret
                    .as_ref()
                    .map(|secret| cipher.seal(secret.secret(), signing_secret_slot(id)))
                    .transpose()?;
                diesel::update(notification_channels::table.find(id))
                    .set((
                        notification_channels::url_sealed.eq(url),
                        notification_channels::signing_secret_sealed.eq(secret),
                    ))
                    .execute(conn)
                    .await?;
                find_channel(conn, id).await
            })
            .await;
        self.store.settle(conn, result).await
    }

    async fn get(&self, id: ChannelId) -> Result<NotificationChannel, RepositoryError> {
        let mut conn = self.store.connection().await?;
        let result = find_channel(&mut conn, id.get()).await;
        self.store.settle(conn, result).await
    }

    async fn list(&self, page: PageRequest) -> Result<Page<NotificationChannel>, RepositoryError> {
        let (offset, limit) = offset_limit(page);
        let mut conn = self.store.connection().await?;
        let result = conn
            .build_transaction()
            .read_only()
            .repeatable_read()
            .run::<_, Failure, _>(async move |conn| {
                let total = notification_channels::table.count().get_result::<i64>(conn).await?;
                let rows = notification_channels::table
                    .select(ChannelRow::as_select())
                    .order(notification_channels::id.asc())
                    .offset(offset)
                    .limit(limit)
                    .load(conn)
                    .await?;
                Ok((total, rows))
            })
            .await;
        let (total, rows) = self.store.settle(conn, result).await?;
        let items = rows.into_iter().map(ChannelRow::into_domain).collect::<Result<_, _>>()?;
        Ok(Page { items, total: total_count(total) })
    }

    async fn update(
        &self,
        id: ChannelId,
        patch: ChannelPatch,
        now: Timestamp,
    ) -> Result<NotificationChannel, RepositoryError> {
        let id = id.get();
        if patch.is_empty() {
            return self.get(ChannelId::new(id)).await;
        }
        let seal = |secret: &rosetta_domain::Secret, slot| {
            self.cipher.seal(secret, slot).map_err(|e| RepositoryError::Unexpected(Box::new(e)))
        };
        let url_sealed = patch.url.as_ref().map(|url| seal(url.secret(), url_slot(id)).map(Some)).transpose()?;
        let signing_secret_sealed = match &patch.signing_secret {
            Patch::Keep => None,
            Patch::Clear => Some(None),
            Patch::Set(secret) => Some(Some(seal(secret.secret(), signing_secret_slot(id))?)),
        };
        let changes = ChannelChangeset {
            name: patch.name.as_ref().map(ChannelName::as_str),
            kind: patch.kind.map(|kind| kind.as_str()),
            url_sealed,
            url_host: patch.url.as_ref().map(ChannelUrl::host),
            signing_secret_sealed,
            min_severity: patch.min_severity.map(|severity| severity.as_str()),
            enabled: patch.enabled,
            updated_at: now,
        };
        let mut conn = self.store.connection().await?;
        let result = diesel::update(notification_channels::table.find(id))
            .set(changes)
            .returning(ChannelRow::as_returning())
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(|e| match &patch.name {
                Some(name) => {
                    name_conflict(e, NOTIFICATION_CHANNELS_NAME_KEY, EntityKind::NotificationChannel, name.as_str())
                }
                None => e.into(),
            })
            .and_then(|row| row.ok_or_else(|| not_found(EntityKind::NotificationChannel, id)));
        Ok(self.store.settle(conn, result).await?.into_domain()?)
    }

    async fn delete(&self, id: ChannelId) -> Result<(), RepositoryError> {
        let id = id.get();
        let mut conn = self.store.connection().await?;
        let result = diesel::delete(notification_channels::table.find(id))
            .execute(&mut conn)
            .await
            .map_err(Failure::from)
            .and_then(
                |deleted| if deleted == 0 { Err(not_found(EntityKind::NotificationChannel, id)) } else { Ok(()) },
            );
        self.store.settle(conn, result).await
    }

    async fn target(&self, id: ChannelId) -> Result<ChannelTarget, RepositoryError> {
        let id = id.get();
        let mut conn = self.store.connection().await?;
        let result = notification_channels::table
            .find(id)
            .select((ChannelRow::as_select(), SealedRow::as_select()))
            .first::<(ChannelRow, SealedRow)>(&mut conn)
            .await
            .optional()
            .map_err(Failure::from)
            .and_then(|row| row.ok_or_else(|| not_found(EntityKind::NotificationChannel, id)));
        let (channel, sealed) = self.store.settle(conn, result).await?;
        open_target(self.cipher.as_ref(), channel.into_domain()?, sealed)
            .map_err(|e| RepositoryError::Unexpected(e.into()))
    }
}

/// A delivery as read back.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = deliveries, check_for_backend(Pg))]
struct DeliveryRow {
    id: i64,
    channel_id: i64,
    alert_id: i64,
    notification_type: String,
    state: String,
    attempts: i32,
    status_code: Option<i32>,
    error: Option<String>,
    created_at: Timestamp,
    delivered_at: Option<Timestamp>,
    next_attempt_at: Option<Timestamp>,
}

impl DeliveryRow {
    fn into_domain(self) -> Result<Delivery, CorruptRow> {
        let row = StoredRow::new("deliveries", self.id);
        Ok(Delivery {
            id: DeliveryId::new(self.id),
            channel_id: ChannelId::new(self.channel_id),
            alert_id: rosetta_domain::AlertId::new(self.alert_id),
            notification_type: row.field("type", self.notification_type.parse())?,
            state: row.field("state", self.state.parse())?,
            attempts: u32::try_from(self.attempts).map_err(|_| row.invalid("attempts", "is negative"))?,
            status_code: self.status_code.and_then(|code| u16::try_from(code).ok()),
            error: self.error,
            created_at: self.created_at,
            delivered_at: self.delivered_at,
            next_attempt_at: self.next_attempt_at,
        })
    }
}

/// Records attempts `$1` (ids) of which `$6` tells the state.
const RECORD_ATTEMPTS: &str = "\
UPDATE deliveries d
SET attempts = i.attempts, status_code = i.status_code, error = i.error, state = i.state,
    delivered_at = CASE WHEN i.state = 'DELIVERED' THEN i.at END,
    next_attempt_at = CASE WHEN i.state = 'PENDING' THEN i.next_attempt_at END
FROM unnest($1::int8[], $2::int4[], $3::int4[], $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[])
     AS i (id, attempts, status_code, error, state, at, next_attempt_at)
WHERE d.id = i.id";

/// [`DeliveryStore`] over the metadata database.
#[derive(Clone)]
pub struct PostgresDeliveryStore {
    store: PostgresStore,
    cipher: Arc<dyn SecretCipher>,
}

impl std::fmt::Debug for PostgresDeliveryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresDeliveryStore").field("store", &self.store).finish_non_exhaustive()
    }
}

impl PostgresDeliveryStore {
    /// A delivery store over `store`, opening channel secrets with `cipher`.
    pub fn new(store: PostgresStore, cipher: Arc<dyn SecretCipher>) -> Self {
        Self { store, cipher }
    }
}

#[async_trait]
impl DeliveryStore for PostgresDeliveryStore {
    async fn pending(&self, ids: &[i64]) -> Result<Vec<PendingDelivery>, RepositoryError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = ids.to_vec();
        let mut conn = self.store.connection().await?;
        let result = conn
            .build_transaction()
            .read_only()
            .run::<_, Failure, _>(async move |conn| {
                let rows = deliveries::table
                    .inner_join(notification_channels::table)
                    .inner_join(alerts::table)
                    .filter(deliveries::id.eq_any(&ids))
                    .filter(deliveries::state.eq("PENDING"))
                    .select((
                        DeliveryRow::as_select(),
                        ChannelRow::as_select(),
                        SealedRow::as_select(),
                        AlertRow::as_select(),
                    ))
                    .load::<(DeliveryRow, ChannelRow, SealedRow, AlertRow)>(conn)
                    .await?;
                let mut pending = Vec::with_capacity(rows.len());
                for (delivery, channel, sealed, alert) in rows {
                    pending.push((delivery.into_domain()?, channel.into_domain()?, sealed, alert.into_domain()?));
                }
                Ok(pending)
            })
            .await;
        let rows = self.store.settle(conn, result).await?;
        Ok(rows
            .into_iter()
            .map(|(delivery, channel, sealed, alert)| PendingDelivery {
                delivery,
                target: open_target(self.cipher.as_ref(), channel, sealed),
                alert,
            })
            .collect())
    }

    async fn record(&self, owner: &LeaseOwner, attempts: Vec<DeliveryAttempt>) -> Result<Vec<i64>, RepositoryError> {
        if attempts.is_empty() {
            return Ok(Vec::new());
        }
        let owner = owner.clone();
        let mut conn = self.store.connection().await?;
        let result = conn
            .transaction::<_, Failure, _>(async move |conn| {
                let leases: Vec<(i64, Next)> = attempts.iter().map(|a| (a.id.get(), a.next)).collect();
                let completed = complete_in(conn, Queue::NOTIFICATION_DELIVERY, &owner, &leases).await?;
                let recorded: Vec<&DeliveryAttempt> =
                    attempts.iter().filter(|a| completed.contains(&a.id.get())).collect();
                if recorded.is_empty() {
                    return Ok(completed);
                }
                let state = |a: &DeliveryAttempt| match (a.delivered, a.next) {
                    (true, _) => "DELIVERED",
                    (false, Next::Done) => "FAILED",
                    (false, Next::DueAt(_)) => "PENDING",
                };
                let ids: Vec<i64> = recorded.iter().map(|a| a.id.get()).collect();
                let counts: Vec<i32> = recorded.iter().map(|a| i32::try_from(a.attempts).unwrap_or(i32::MAX)).collect();
                let codes: Vec<Option<i32>> = recorded.iter().map(|a| a.result.status_code.map(i32::from)).collect();
                let errors: Vec<Option<String>> = recorded.iter().map(|a| a.result.error.clone()).collect();
                let states: Vec<&str> = recorded.iter().map(|a| state(a)).collect();
                let ats: Vec<Timestamp> = recorded.iter().map(|a| a.at).collect();
                let next: Vec<Option<Timestamp>> = recorded
                    .iter()
                    .map(|a| match a.next {
                        Next::DueAt(at) => Some(at),
                        Next::Done => None,
                    })
                    .collect();
                diesel::sql_query(RECORD_ATTEMPTS)
                    .bind::<Array<BigInt>, _>(&ids)
                    .bind::<Array<Integer>, _>(&counts)
                    .bind::<Array<Nullable<Integer>>, _>(&codes)
                    .bind::<Array<Nullable<Text>>, _>(&errors)
                    .bind::<Array<Text>, _>(&states)
                    .bind::<Array<Timestamptz>, _>(&ats)
                    .bind::<Array<Nullable<Timestamptz>>, _>(&next)
                    .execute(conn)
                    .await?;
                Ok(completed)
            })
            .await;
        self.store.settle(conn, result).await
    }

    async fn list(&self, channel: ChannelId, page: PageRequest) -> Result<Page<Delivery>, RepositoryError> {
        let channel = channel.get();
        let (offset, limit) = offset_limit(page);
        let mut conn = self.store.connection().await?;
        let result = conn
            .build_transaction()
            .read_only()
            .repeatable_read()
            .run::<_, Failure, _>(async move |conn| {
                find_channel(conn, channel).await?;
                let of_channel = deliveries::table.filter(deliveries::channel_id.eq(channel));
                let total = of_channel.count().get_result::<i64>(conn).await?;
                let rows = of_channel
                    .select(DeliveryRow::as_select())
                    .order(deliveries::id.desc())
                    .offset(offset)
                    .limit(limit)
                    .load(conn)
                    .await?;
                Ok((total, rows))
            })
            .await;
        let (total, rows) = self.store.settle(conn, result).await?;
        let items = rows.into_iter().map(DeliveryRow::into_domain).collect::<Result<_, _>>()?;
        Ok(Page { items, total: total_count(total) })
    }
}
