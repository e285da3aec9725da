//! Tenants: who owns which S3 prefix, how their people are matched, and
//! their column mapping. Routing an object to its tenant lives here because
//! it is the tenant-isolation boundary: a key is only ever routed to the one
//! tenant whose prefix it starts with.

use std::collections::BTreeMap;

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    QueryFilter, QueryOrder,
};
use serde::Serialize;

use crate::db::entity::{profile_field, tenant};
use crate::map::{FieldType, Mapping, MatchKey};
use crate::telemetry::events::IgnoreReason;

/// A tenant as the rest of the code sees it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Tenant {
    /// Database id.
    pub id: i64,
    /// Short unique name, e.g. `acme`.
    pub slug: String,
    /// Bucket of the drop location.
    pub bucket: String,
    /// Key prefix of the drop location, always ending in `/`.
    pub key_prefix: String,
    /// Identity field.
    pub match_key: MatchKey,
    /// Column mapping, once set.
    pub mapping: Option<Mapping>,
    /// Hold uploads deactivating more than this % of active feed-managed users...
    pub hold_over_percent: i32,
    /// ...and more than this many users.
    pub hold_over_count: i32,
    /// The feed epoch when the tenant was read: folded into the digests an
    /// upload writes (see `map::StagedRow::digest_for`). Reading it before
    /// the rows are applied is what keeps digests safe: a change made after
    /// the read bumps the stored epoch past this one.
    #[serde(skip)]
    pub feed_epoch: i64,
    /// Custom profile fields and their types (loaded by [`by_slug`] and
    /// [`by_id`]; empty in [`list`]).
    pub profile_fields: BTreeMap<String, FieldType>,
    /// Where this tenant's notifications go; `None`: the platform's
    /// `notify.default_url`, if any.
    pub webhook_url: Option<String>,
    /// The version of its signing secret (see [`crate::notify`]).
    #[serde(skip)]
    pub webhook_secret_version: i32,
}

impl Tenant {
    /// `s3://bucket/prefix`, or `None` for a tenant without a bucket (one
    /// that delivers only to the drop folder).
    pub fn s3_location(&self) -> Option<String> {
        (!self.bucket.is_empty()).then(|| format!("s3://{}/{}", self.bucket, self.key_prefix))
    }
}

/// Tenant administration failures.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    /// No tenant has that slug.
    #[error("no tenant named {0:?}")]
    NotFound(String),
    /// The slug is taken.
    #[error("a tenant named {0:?} already exists")]
    Exists(String),
    /// The slug has characters outside `a-z 0-9 -`.
    #[error(
        "tenant name {0:?} must be 1-63 lowercase letters, digits or dashes, starting with a letter or digit"
    )]
    BadSlug(String),
    /// The prefix is unusable.
    #[error("key prefix {0:?} is not usable: {1}")]
    BadPrefix(String, &'static str),
    /// The prefix overlaps another tenant's in the same bucket.
    #[error(
        "key prefix {prefix:?} overlaps tenant {other:?}'s prefix {other_prefix:?} in bucket {bucket:?}"
    )]
    Overlap {
        /// Bucket of both.
        bucket: String,
        /// The requested prefix.
        prefix: String,
        /// The tenant already there.
        other: String,
        /// Its prefix.
        other_prefix: String,
    },
    /// A setting is out of range.
    #[error("{0}")]
    Invalid(String),
    /// The object is still in use (a profile field its mapping fills).
    #[error("{0}")]
    InUse(String),
    /// No such group or profile field of the tenant.
    #[error("{0}")]
    Missing(String),
    /// The stored row is inconsistent (should never happen; the schema checks it).
    #[error("tenant {0:?} has an invalid stored value: {1}")]
    Corrupt(String, String),
    /// Database failure.
    #[error(transparent)]
    Db(#[from] DbErr),
}

impl TryFrom<tenant::Model> for Tenant {
    type Error = TenantError;
    fn try_from(m: tenant::Model) -> Result<Self, TenantError> {
        let match_key = MatchKey::parse(&m.match_key).ok_or_else(|| {
            TenantError::Corrupt(m.slug.clone(), format!("match_key {}", m.match_key))
        })?;
        let mapping = match m.mapping {
            None => None,
            Some(v) => Some(
                serde_json::from_value(v)
                    .map_err(|e| TenantError::Corrupt(m.slug.clone(), format!("mapping: {e}")))?,
            ),
        };
        Ok(Tenant {
            id: m.id,
            slug: m.slug,
            bucket: m.bucket,
            key_prefix: m.key_prefix,
            match_key,
            mapping,
            hold_over_percent: m.hold_over_percent,
            hold_over_count: m.hold_over_count,
            feed_epoch: m.feed_epoch,
            profile_fields: BTreeMap::new(),
            webhook_url: m.webhook_url,
            webhook_secret_version: m.webhook_secret_version,
        })
    }
}

/// Normalises a prefix: no leading `/`, exactly one trailing `/`.
pub fn normalise_prefix(prefix: &str) -> Result<String, TenantError> {
    let p = prefix.trim().trim_start_matches('/');
    if p.is_empty() {
        return Err(TenantError::BadPrefix(
            prefix.into(),
            "it must not be empty (a tenant never owns a whole bucket)",
        ));
    }
    if p.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(TenantError::BadPrefix(
            prefix.into(),
            "it must not contain '.' or '..' segments",
        ));
    }
    if p.chars().any(char::is_control) {
        return Err(TenantError::BadPrefix(
            prefix.into(),
            "it must not contain control characters",
        ));
    }
    Ok(if p.ends_with('/') {
        p.to_string()
    } else {
        format!("{p}/")
    })
}

/// Why an object key is refused before routing, if it is.
pub fn unsafe_key_reason(key: &str) -> Option<IgnoreReason> {
    if key.ends_with('/') {
        return Some(IgnoreReason::FolderMarker);
    }
    if key.chars().any(char::is_control) {
        return Some(IgnoreReason::UnsafeKey);
    }
    // S3 keys are opaque strings, so "acme/../b/x.csv" is literally under
    // "acme/". We still refuse dot segments: they are never a real HR export
    // and would become path traversal the day a file-system source reuses
    // this routing.
    if key.split('/').any(|seg| seg == "." || seg == "..") {
        return Some(IgnoreReason::UnsafeKey);
    }
    None
}

fn check_slug(slug: &str) -> Result<(), TenantError> {
    if crate::validate::is_valid_slug(slug) {
        Ok(())
    } else {
        Err(TenantError::BadSlug(slug.into()))
    }
}

/// Creates a tenant.
pub async fn add<C: ConnectionTrait>(
    db: &C,
    slug: &str,
    bucket: &str,
    prefix: &str,
    match_key: MatchKey,
) -> Result<Tenant, TenantError> {
    check_slug(slug)?;
    let prefix = normalise_prefix(prefix)?;
    if tenant::Entity::find()
        .filter(tenant::Column::Slug.eq(slug))
        .one(db)
        .await?
        .is_some()
    {
        return Err(TenantError::Exists(slug.into()));
    }
    // Overlapping prefixes in one bucket would make routing ambiguous and
    // let one tenant's key reach another's users.
    for other in tenant::Entity::find()
        .filter(tenant::Column::Bucket.eq(bucket))
        .all(db)
        .await?
    {
        if other.key_prefix.starts_with(&prefix) || prefix.starts_with(&other.key_prefix) {
            return Err(TenantError::Overlap {
                bucket: bucket.into(),
                prefix,
                other: other.slug,
                other_prefix: other.key_prefix,
            });
        }
    }
    let now = Utc::now();
    let model = tenant::ActiveModel {
        slug: Set(slug.into()),
        bucket: Set(bucket.into()),
        key_prefix: Set(prefix),
        match_key: Set(match_key.as_str().into()),
        mapping: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await?;
    model.try_into()
}

/// Sets (or with `None` clears) the tenant's webhook URL, already checked;
/// `rotate` bumps its signing secret's version.
pub async fn set_webhook<C: ConnectionTrait>(
    db: &C,
    slug: &str,
    url: Option<String>,
    rotate: bool,
) -> Result<Tenant, TenantError> {
    let t = by_slug(db, slug).await?;
    let mut am = tenant::ActiveModel {
        id: Set(t.id),
        webhook_url: Set(url.clone()),
        updated_at: Set(Utc::now()),
        ..Default::default()
    };
    if rotate {
        am.webhook_secret_version = Set(t.webhook_secret_version + 1);
    }
    am.update(db).await?;
    Ok(Tenant {
        webhook_url: url,
        webhook_secret_version: t.webhook_secret_version + i32::from(rotate),
        ..t
    })
}

/// Sets the deactivation safety cap of a tenant (see `apply::hold_reason`).
pub async fn set_hold_limits<C: ConnectionTrait>(
    db: &C,
    slug: &str,
    percent: Option<i32>,
    count: Option<i32>,
) -> Result<Tenant, TenantError> {
    let t = by_slug(db, slug).await?;
    let mut am = tenant::ActiveModel {
        id: Set(t.id),
        updated_at: Set(Utc::now()),
        ..Default::default()
    };
    if let Some(p) = percent {
        if !(0..=100).contains(&p) {
            return Err(TenantError::Invalid(
                "--hold-over-percent must be between 0 and 100".into(),
            ));
        }
        am.hold_over_percent = Set(p);
    }
    if let Some(c) = count {
        if c < 0 {
            return Err(TenantError::Invalid(
                "--hold-over-count must be 0 or more".into(),
            ));
        }
        am.hold_over_count = Set(c);
    }
    am.update(db).await?;
    by_slug(db, slug).await
}

/// All tenants, by slug.
pub async fn list<C: ConnectionTrait>(db: &C) -> Result<Vec<Tenant>, TenantError> {
    tenant::Entity::find()
        .order_by_asc(tenant::Column::Slug)
        .all(db)
        .await?
        .into_iter()
        .map(Tenant::try_from)
        .collect()
}

/// The tenant with this slug.
pub async fn by_slug<C: ConnectionTrait>(db: &C, slug: &str) -> Result<Tenant, TenantError> {
    let t: Tenant = tenant::Entity::find()
        .filter(tenant::Column::Slug.eq(slug))
        .one(db)
        .await?
        .ok_or_else(|| TenantError::NotFound(slug.into()))?
        .try_into()?;
    with_fields(db, t).await
}

async fn with_fields<C: ConnectionTrait>(db: &C, mut t: Tenant) -> Result<Tenant, TenantError> {
    for f in profile_field::Entity::find()
        .filter(profile_field::Column::TenantId.eq(t.id))
        .all(db)
        .await?
    {
        let ty = FieldType::parse(&f.field_type).ok_or_else(|| {
            TenantError::Corrupt(t.slug.clone(), format!("field type {}", f.field_type))
        })?;
        t.profile_fields.insert(f.field_key, ty);
    }
    Ok(t)
}

/// The tenant with this id.
pub async fn by_id<C: ConnectionTrait>(db: &C, id: i64) -> Result<Tenant, TenantError> {
    let t: Tenant = tenant::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| TenantError::NotFound(format!("#{id}")))?
        .try_into()?;
    with_fields(db, t).await
}

/// Defines a custom profile field of the tenant.
pub async fn add_profile_field<C: ConnectionTrait>(
    db: &C,
    slug: &str,
    key: &str,
    ty: FieldType,
) -> Result<(), TenantError> {
    let t = by_slug(db, slug).await?;
    let ok = !key.is_empty()
        && key.len() <= 64
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(TenantError::Invalid(format!(
            "profile field name {key:?} must be 1-64 letters, digits or underscores"
        )));
    }
    if t.profile_fields.contains_key(key) {
        return Err(TenantError::Invalid(format!(
            "tenant {slug:?} already has a profile field {key:?}"
        )));
    }
    profile_field::ActiveModel {
        tenant_id: Set(t.id),
        field_key: Set(key.to_string()),
        field_type: Set(ty.as_str().to_string()),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// Removes a custom profile field. Refused while the tenant's mapping fills
/// it (the mapping would no longer apply); values users already hold stay
/// in their profiles, as data the platform may still show.
pub async fn remove_profile_field<C: ConnectionTrait>(
    db: &C,
    slug: &str,
    key: &str,
) -> Result<(), TenantError> {
    let t = by_slug(db, slug).await?;
    if !t.profile_fields.contains_key(key) {
        return Err(TenantError::Missing(format!(
            "tenant {slug:?} has no profile field {key:?}"
        )));
    }
    if let Some(column) = t.mapping.as_ref().and_then(|m| m.profile.get(key)) {
        return Err(TenantError::InUse(format!(
            "profile field {key:?} is filled from column {column:?} by the mapping; \
             remove it from the mapping first"
        )));
    }
    profile_field::Entity::delete_many()
        .filter(profile_field::Column::TenantId.eq(t.id))
        .filter(profile_field::Column::FieldKey.eq(key))
        .exec(db)
        .await?;
    Ok(())
}

/// Replaces the tenant's mapping (already checked against its match key).
pub async fn set_mapping<C: ConnectionTrait>(
    db: &C,
    slug: &str,
    mapping: &Mapping,
) -> Result<Tenant, TenantError> {
    let t = by_slug(db, slug).await?;
    let undefined: Vec<&String> = mapping
        .profile
        .keys()
        .filter(|k| !t.profile_fields.contains_key(*k))
        .collect();
    if !undefined.is_empty() {
        return Err(TenantError::Invalid(format!(
            "the mapping names profile field(s) {undefined:?} that tenant {slug:?} does not define; \
             add each with `userfeed profile-field add {slug} KEY --type text|number|date|boolean`"
        )));
    }
    let json = serde_json::to_value(mapping)
        .map_err(|e| TenantError::Corrupt(slug.into(), e.to_string()))?;
    tenant::ActiveModel {
        id: Set(t.id),
        mapping: Set(Some(json)),
        updated_at: Set(Utc::now()),
        ..Default::default()
    }
    .update(db)
    .await?;
    by_slug(db, slug).await
}

/// The tenant owning `bucket`/`key`, if any. Looks up every `/`-terminated
/// prefix of the key, so routing is one indexed query however many tenants
/// share the bucket.
pub async fn route<C: ConnectionTrait>(
    db: &C,
    bucket: &str,
    key: &str,
) -> Result<Option<Tenant>, TenantError> {
    let prefixes: Vec<&str> = key.match_indices('/').map(|(i, _)| &key[..=i]).collect();
    if prefixes.is_empty() {
        return Ok(None);
    }
    let found = tenant::Entity::find()
        .filter(tenant::Column::Bucket.eq(bucket))
        .filter(tenant::Column::KeyPrefix.is_in(prefixes))
        .all(db)
        .await?;
    // Prefixes never overlap (enforced by `add`), so at most one matches.
    found.into_iter().next().map(Tenant::try_from).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_normalised_to_one_trailing_slash() {
        assert_eq!(normalise_prefix("acme").unwrap(), "acme/");
        assert_eq!(normalise_prefix("/acme/hr/").unwrap(), "acme/hr/");
        assert!(normalise_prefix("").is_err());
        assert!(normalise_prefix("/").is_err());
        assert!(normalise_prefix("acme/../x").is_err());
    }

    #[test]
    fn dot_segments_and_folder_markers_are_refused() {
        assert_eq!(unsafe_key_reason("acme/users.csv"), None);
        assert_eq!(
            unsafe_key_reason("acme/in/"),
            Some(IgnoreReason::FolderMarker)
        );
        assert_eq!(
            unsafe_key_reason("acme/../other/x.csv"),
            Some(IgnoreReason::UnsafeKey)
        );
        assert_eq!(
            unsafe_key_reason("acme/./x.csv"),
            Some(IgnoreReason::UnsafeKey)
        );
        assert_eq!(
            unsafe_key_reason("acme/x\u{0}.csv"),
            Some(IgnoreReason::UnsafeKey)
        );
        assert_eq!(unsafe_key_reason("acme/..x.csv"), None);
    }

    #[test]
    fn slugs_are_checked() {
        assert!(check_slug("acme-2").is_ok());
        for bad in ["", "Acme", "-x", "a_b", "a b"] {
            assert!(check_slug(bad).is_err(), "{bad}");
        }
    }
}
