//! `POST /v1/admin/reload`: re-read the configuration (as SIGHUP does).
//!
//! The rules of a reload live in [`crate::reload`]; this handler checks the
//! caller is an admin and renders the outcome.

use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Permission;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::Caller;
use crate::reload::{ReloadError, Reloaded};
use crate::state::AppState;

/// Routes of this area, merged by [`super::api`].
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(reload))
}

/// Re-reads the configuration file and environment and applies the
/// settings that can change while the hub runs; see docs/operations.md.
#[utoipa::path(post, path = "/v1/admin/reload", tag = "admin",
    responses(
        (status = 200, body = Reloaded, description = "Applied; lists every key that changed"),
        (status = 400, body = ErrorBody, description = "The configuration is invalid; nothing changed"),
        (status = 409, body = ErrorBody, description = "A key that needs a restart changed; nothing changed"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn reload(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Reloaded>, ApiError> {
    caller.require(Permission::Admin)?;
    state
        .reloader
        .reload(&state)
        .map(Json)
        .map_err(|e| match e {
            ReloadError::Invalid(_) => ApiError::BadRequest {
                code: "invalid_configuration",
                message: e.to_string(),
            },
            ReloadError::NeedsRestart(_) => ApiError::Conflict {
                code: "restart_required",
                message: e.to_string(),
            },
            ReloadError::NoSource => ApiError::Conflict {
                code: "no_configuration_source",
                message: e.to_string(),
            },
        })
}
