//! Tenants, their settings, mappings, groups, profile fields and users.

use super::*;

/// A new tenant, as asked for by `tenant add` and `POST /tenants`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// Short unique name (lowercase letters, digits, dashes).
    #[schema(max_length = 63)]
    pub slug: String,
    /// Bucket of its S3 drop location; empty for the drop folder only.
    #[serde(default)]
    #[schema(max_length = 63)]
    pub bucket: String,
    /// Key prefix in the bucket; the slug when not given.
    #[serde(default)]
    #[schema(max_length = 512)]
    pub prefix: Option<String>,
    /// How people are matched across files.
    pub match_on: MatchKey,
}

/// New safety-cap limits; a field left out keeps its value.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    /// Hold an upload deactivating more than this % of the active
    /// feed-managed users...
    pub hold_over_percent: Option<i32>,
    /// ...and more than this many.
    pub hold_over_count: Option<i32>,
}

/// A group files can add people to.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    /// The ID files name it by.
    #[schema(max_length = 255)]
    pub id: String,
    /// Its name on the platform.
    #[schema(max_length = 255)]
    pub name: String,
}

/// What removing a group did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RemovedGroup {
    /// The group's key.
    pub id: String,
    /// Memberships removed with it.
    pub memberships: u64,
}

/// A custom profile field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileField {
    /// Its key, as mappings name it.
    #[schema(max_length = 64)]
    pub key: String,
    /// Its type.
    #[serde(rename = "type")]
    pub field_type: FieldType,
}

impl NewTenant {
    fn check(&self) -> Result<(), ServiceError> {
        use crate::validate::max;
        text("slug", &self.slug, 63)?;
        text("bucket", &self.bucket, max::BUCKET)?;
        text("prefix", self.prefix.as_deref().unwrap_or(""), max::PREFIX)
    }
}

impl NewGroup {
    fn check(&self) -> Result<(), ServiceError> {
        use crate::validate::max;
        text("id", &self.id, max::GROUP_ID)?;
        text("name", &self.name, max::GROUP_NAME)
    }
}

impl Service {
    /// The tenants the caller reaches, by slug.
    pub async fn tenants(&self, caller: &Caller) -> Result<Vec<Tenant>, ServiceError> {
        let db = &self.db;
        let all = crate::tenants::list(db).await?;
        Ok(all
            .into_iter()
            .filter(|t| caller.reaches(&t.slug))
            .collect())
    }

    /// Creates a tenant. Only the platform may.
    pub async fn add_tenant(
        &self,
        caller: &Caller,
        new: &NewTenant,
    ) -> Result<Tenant, ServiceError> {
        let db = &self.db;
        if *caller != Caller::Platform {
            return Err(ServiceError::Forbidden(
                "only a platform token can create tenants".into(),
            ));
        }
        new.check()?;
        let prefix = new
            .prefix
            .clone()
            .unwrap_or_else(|| format!("{}/", new.slug));
        Ok(crate::tenants::add(db, &new.slug, &new.bucket, &prefix, new.match_on).await?)
    }

    /// A tenant's users with their roles, managers and groups.
    pub async fn users(
        &self,
        caller: &Caller,
        slug: &str,
    ) -> Result<Vec<report::UserListing>, ServiceError> {
        let db = &self.db;
        let t = self.tenant(caller, slug).await?;
        Ok(report::users(db, t.id).await?)
    }

    /// Changes a tenant's settings.
    pub async fn set_tenant(
        &self,
        caller: &Caller,
        slug: &str,
        settings: &TenantSettings,
    ) -> Result<Tenant, ServiceError> {
        let db = &self.db;
        self.tenant(caller, slug).await?;
        Ok(crate::tenants::set_hold_limits(
            db,
            slug,
            settings.hold_over_percent,
            settings.hold_over_count,
        )
        .await?)
    }

    /// A tenant's mapping.
    pub async fn mapping(&self, caller: &Caller, slug: &str) -> Result<Mapping, ServiceError> {
        let _db = &self.db;
        self.tenant(caller, slug)
            .await?
            .mapping
            .ok_or_else(|| ServiceError::NotFound(format!("tenant {slug:?} has no mapping yet")))
    }

    /// Replaces a tenant's mapping, checked against its match key and its
    /// profile fields.
    pub async fn set_mapping(
        &self,
        caller: &Caller,
        slug: &str,
        mapping: &Mapping,
    ) -> Result<Tenant, ServiceError> {
        let db = &self.db;
        let t = self.tenant(caller, slug).await?;
        mapping
            .check(t.match_key)
            .map_err(|e| ServiceError::Invalid(e.to_string()))?;
        Ok(crate::tenants::set_mapping(db, slug, mapping).await?)
    }

    /// A tenant's groups, by key.
    pub async fn groups(
        &self,
        caller: &Caller,
        slug: &str,
    ) -> Result<Vec<group::Model>, ServiceError> {
        let db = &self.db;
        self.tenant(caller, slug).await?;
        Ok(crate::groups::list(db, slug).await?)
    }

    /// Adds a group to a tenant.
    pub async fn add_group(
        &self,
        caller: &Caller,
        slug: &str,
        new: &NewGroup,
    ) -> Result<group::Model, ServiceError> {
        let db = &self.db;
        self.tenant(caller, slug).await?;
        new.check()?;
        Ok(crate::groups::add(db, slug, &new.id, &new.name).await?)
    }

    /// Removes a group and its memberships.
    pub async fn remove_group(
        &self,
        caller: &Caller,
        slug: &str,
        key: &str,
    ) -> Result<RemovedGroup, ServiceError> {
        let db = &self.db;
        self.tenant(caller, slug).await?;
        // A key no group can have names none (as a missing one does).
        if crate::validate::text("id", key, crate::validate::max::GROUP_ID).is_err() {
            return Err(ServiceError::NotFound(format!(
                "tenant {slug:?} has no group with that id"
            )));
        }
        let memberships = crate::groups::remove(db, slug, key).await?;
        Ok(RemovedGroup {
            id: key.to_string(),
            memberships,
        })
    }

    /// Removes a custom profile field (refused while the mapping fills it).
    pub async fn remove_profile_field(
        &self,
        caller: &Caller,
        slug: &str,
        key: &str,
    ) -> Result<(), ServiceError> {
        let db = &self.db;
        self.tenant(caller, slug).await?;
        // A key no field can have names none (as a missing one does).
        if crate::validate::text("key", key, crate::validate::max::PROFILE_KEY).is_err() {
            return Err(ServiceError::NotFound(format!(
                "tenant {slug:?} has no profile field with that key"
            )));
        }
        Ok(crate::tenants::remove_profile_field(db, slug, key).await?)
    }

    /// A tenant's custom profile fields, by key.
    pub async fn profile_fields(
        &self,
        caller: &Caller,
        slug: &str,
    ) -> Result<Vec<ProfileField>, ServiceError> {
        let _db = &self.db;
        let t = self.tenant(caller, slug).await?;
        Ok(t.profile_fields
            .into_iter()
            .map(|(key, field_type)| ProfileField { key, field_type })
            .collect())
    }

    /// Adds a custom profile field to a tenant.
    pub async fn add_profile_field(
        &self,
        caller: &Caller,
        slug: &str,
        field: &ProfileField,
    ) -> Result<(), ServiceError> {
        let db = &self.db;
        self.tenant(caller, slug).await?;
        text("key", &field.key, crate::validate::max::PROFILE_KEY)?;
        Ok(crate::tenants::add_profile_field(db, slug, &field.key, field.field_type).await?)
    }

    /// One tenant.
    pub async fn tenant(&self, caller: &Caller, slug: &str) -> Result<Tenant, ServiceError> {
        let db = &self.db;
        // A slug that cannot exist (a NUL, 1 MB) is not looked up: the
        // database would refuse it with an error, not a "no tenant".
        if !caller.reaches(slug) || !crate::validate::is_valid_slug(slug) {
            return Err(no_tenant(slug));
        }
        Ok(crate::tenants::by_slug(db, slug).await?)
    }
}
