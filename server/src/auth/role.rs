//! Roles and what each may do, defined once.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The role carried in a token's `role` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including webhooks, agent drains and token-free operations.
    Admin,
    /// Create and cancel jobs; read everything jobs-related.
    Operator,
    /// Read only.
    Viewer,
    /// Only the agent WebSocket; its `sub` is the agent's name.
    Agent,
}

/// Something a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read jobs, items, documents, events.
    Read,
    /// Create and cancel jobs.
    Operate,
    /// Administer the hub (webhooks, agents).
    Admin,
    /// Connect as an agent.
    ConnectAgent,
}

impl Role {
    pub const ALL: &'static [Role] = &[Role::Admin, Role::Operator, Role::Viewer, Role::Agent];

    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
            Role::Agent => "agent",
        }
    }

    /// Whether this role grants `permission`.
    pub const fn allows(self, permission: Permission) -> bool {
        matches!(
            (self, permission),
            (
                Role::Admin,
                Permission::Read | Permission::Operate | Permission::Admin
            ) | (Role::Operator, Permission::Read | Permission::Operate)
                | (Role::Viewer, Permission::Read)
                | (Role::Agent, Permission::ConnectAgent)
        )
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("`{s}` is not a role; expected one of: admin, operator, viewer, agent")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_matrix() {
        use Permission::*;
        assert!(
            Role::Admin.allows(Admin) && Role::Admin.allows(Operate) && Role::Admin.allows(Read)
        );
        assert!(!Role::Admin.allows(ConnectAgent));
        assert!(Role::Operator.allows(Operate) && !Role::Operator.allows(Admin));
        assert!(Role::Viewer.allows(Read) && !Role::Viewer.allows(Operate));
        assert!(Role::Agent.allows(ConnectAgent) && !Role::Agent.allows(Read));
        assert!("root".parse::<Role>().is_err());
    }
}
