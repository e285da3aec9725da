//! Platform groups of a tenant (`userfeed group add/list`). Files refer to
//! them by key in their groups column.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder,
};

use crate::db::entity::group;
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
