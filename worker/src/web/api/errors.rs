//! The API's error responses for the OpenAPI document, each defined once:
//! a handler's `responses(…)` names the ones it can answer with
//! (`errors::Authenticated`, `errors::NotFound`, …) beside its success.
//! Every one is a [`Problem`](crate::web::Problem) document.

use std::collections::BTreeMap;

use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};

/// A problem response described as `description`.
fn problem(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
        .into()
}

/// Declares unit types whose OpenAPI responses are problem documents with
/// these statuses and descriptions.
macro_rules! problems {
    ($( $(#[$meta:meta])* $name:ident { $($status:literal => $description:literal),+ $(,)? } )+) => {
        $(
            $(#[$meta])*
            pub struct $name;

            impl utoipa::IntoResponses for $name {
                fn responses() -> BTreeMap<String, RefOr<Response>> {
                    BTreeMap::from([$(($status.to_string(), problem($description))),+])
                }
            }
        )+
    };
}

problems! {
    /// Every authenticated operation: no or a wrong token, or over its
    /// rate (the token's, or the client address's without a valid token).
    Authenticated {
        "401" => "no or a wrong bearer token",
        "429" => "over the token's rate, or the address's without a valid token",
    }
    /// A body or query that is not what the operation reads.
    Malformed { "400" => "the request is malformed" }
    /// An object that does not exist, or that the token does not reach.
    NotFound { "404" => "no such object, or not one the token reaches" }
    /// An operation its object's state refuses.
    Refused { "409" => "refused in the object's current state" }
    /// A JSON body over the limit.
    BodyTooLarge { "413" => "the body is over 1 MiB" }
    /// A file over the limit.
    FileTooLarge {
        "408" => "the file arrived slower than api.min_upload_bytes_per_second",
        "413" => "the file is over limits.max_object_bytes",
    }
    /// A body sent as something other than JSON.
    NotJson { "415" => "the body is not sent as application/json" }
    /// A value that is wrong.
    Invalid { "422" => "a value is wrong" }
    /// The database or another dependency did not answer.
    Unavailable { "503" => "the database or a dependency did not answer" }
    /// The database or IAM did not answer.
    IamUnavailable { "503" => "the database or IAM did not answer" }
}
