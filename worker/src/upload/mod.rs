//! The domain types of an upload: what one is ([`UploadSource`]), where it
//! is in its life ([`UploadState`]), the object event that records one
//! ([`ObjectCreated`]) and an attempt's right to write ([`Lease`]).
//!
//! They sit below every module that records, runs, applies, reports or
//! announces an upload (`intake`, `jobs`, `apply`, `report`, `notify`), so
//! none of those needs another for a type. This module knows no database
//! connection: the entity field types are declared here, the statements that
//! change them live in `jobs::state`.

/// Declares a stored vocabulary: an enum whose variants are each written
/// once with their stored name (the variant's name in lowercase), from which
/// come the sea-orm column type (text on both backends), `as_str`,
/// `Display`, `FromStr` (with `$unknown` as its error) and comparison with
/// a stored string.
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        pub enum $name:ident / $unknown:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash,
            sea_orm::EnumIter, sea_orm::DeriveActiveEnum,
            serde::Serialize, utoipa::ToSchema,
        )]
        #[sea_orm(rs_type = "String", db_type = "Text")]
        // Stored names are the variants' names in lowercase; a test of each
        // vocabulary holds serde's names to `as_str`.
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $(
                $(#[$vmeta])*
                #[sea_orm(string_value = $value)]
                $variant,
            )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: [$name; [$($value),+].len()] = [$($name::$variant),+];

            /// The stored name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $value,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        /// A stored name this build does not know.
        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
        #[error("unknown {} {:?}", stringify!($name), .0)]
        pub struct $unknown(pub String);

        impl std::str::FromStr for $name {
            type Err = $unknown;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::ALL
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| $unknown(s.to_string()))
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

mod lease;
mod object;
mod source;
mod state;

pub use lease::Lease;
pub use object::ObjectCreated;
pub use source::{UnknownSource, UploadSource, drop_location};
pub use state::{Resolution, UnknownState, UploadState};

/// What the queue gauges show, across all pods.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct QueueStats {
    /// Uploads waiting to run.
    pub queued: i64,
    /// Uploads running.
    pub running: i64,
    /// Age of the oldest queued upload in seconds (0 when none).
    pub oldest_queued_age_s: f64,
    /// Uploads held for approval.
    pub held: i64,
    /// How long the oldest held upload has waited, in seconds (0 when none).
    pub oldest_held_age_s: f64,
}
