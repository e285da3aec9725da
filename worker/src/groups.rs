//! Platform groups of a tenant (`userfeed group add/list/remove`). Files
//! refer to them by key in their groups column.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder,
};

use crate::db::entity::{group, group_membership};
use crate::tenants::{self, TenantError};

/// Creates a group `key` named `name` for tenant `slug`.
pub async fn add<C: ConnectionTrait>(
    db: &C,
    slug: &str,
    key: &str,
    name: &str,
) -> Result<group::Model, TenantError> {
    let t = tenants::by_slug(db, slug).await?;
    let key = key.trim();
    if key.is_empty() || key.contains('|') {
        return Err(TenantError::Invalid(format!(
            "group ID {key:?} must be non-empty and must not contain '|'"
        )));
    }
    let exists = group::Entity::find()
        .filter(group::Column::TenantId.eq(t.id))
        .filter(group::Column::GroupKey.eq(key))
        .one(db)
        .await?;
    if exists.is_some() {
        return Err(TenantError::Invalid(format!(
            "tenant {slug:?} already has a group {key:?}"
        )));
    }
    Ok(group::ActiveModel {
        tenant_id: Set(t.id),
        group_key: Set(key.to_string()),
        name: Set(name.to_string()),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await?)
}

/// The tenant's groups by key.
pub async fn list<C: ConnectionTrait>(
    db: &C,
    slug: &str,
) -> Result<Vec<group::Model>, TenantError> {
    let t = tenants::by_slug(db, slug).await?;
    Ok(group::Entity::find()
        .filter(group::Column::TenantId.eq(t.id))
        .order_by_asc(group::Column::GroupKey)
        .all(db)
        .await?)
}

/// Removes group `key` of tenant `slug` with its memberships; returns how
/// many memberships went. A file still naming the group then gets the
/// unknown-group warning on that cell.
pub async fn remove<C: ConnectionTrait>(db: &C, slug: &str, key: &str) -> Result<u64, TenantError> {
    let t = tenants::by_slug(db, slug).await?;
    let Some(g) = group::Entity::find()
        .filter(group::Column::TenantId.eq(t.id))
        .filter(group::Column::GroupKey.eq(key))
        .one(db)
        .await?
    else {
        return Err(TenantError::Missing(format!(
            "tenant {slug:?} has no group {key:?}"
        )));
    };
    let members = group_membership::Entity::delete_many()
        .filter(group_membership::Column::GroupId.eq(g.id))
        .exec(db)
        .await?
        .rows_affected;
    group::Entity::delete_by_id(g.id).exec(db).await?;
    Ok(members)
}
