//! Roles, actors and the permission matrix.

use std::collections::BTreeSet;
use std::fmt;

/// A role carried in the token's `roles` claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Admin,
    Sales,
    Compliance,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::Admin, Role::Sales, Role::Compliance];

    /// The claim value: `admin`, `sales` or `compliance`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Sales => "sales",
            Role::Compliance => "compliance",
        }
    }

    /// Parses a claim value; unknown roles are `None` (and ignored).
    pub fn parse(value: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == value)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an operation needs, one variant per row of DESIGN §2's matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// `viewer`, `person`, `people`, subscription history.
    ReadPeople,
    /// `createPerson`, `updatePerson`, `updateComplianceCard`, bulk updates, `sendEmail`.
    EditPeople,
    /// `unsubscribe`, `exportPerson`, CSV export endpoints.
    UnsubscribeAndExport,
    /// `erasePerson`, `exportPersonData`.
    EraseAndAccess,
    /// `auditEvents`, `Person.auditTrail`, `verifyAuditTrail`.
    ReadAudit,
    /// `resubscribe`, `syncCrm`.
    Resubscribe,
    /// `createPerson` with `overrideSuppression: true`.
    OverrideSuppression,
}

impl Permission {
    /// The roles that hold this permission.
    pub fn roles(self) -> &'static [Role] {
        use Role::*;
        match self {
            Permission::ReadPeople | Permission::UnsubscribeAndExport => {
                &[Sales, Compliance, Admin]
            }
            Permission::EditPeople => &[Sales, Admin],
            Permission::EraseAndAccess | Permission::ReadAudit => &[Compliance, Admin],
            Permission::Resubscribe | Permission::OverrideSuppression => &[Admin],
        }
    }
}

/// A verified caller: the token's subject and its known roles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub subject: String,
    pub roles: BTreeSet<Role>,
}

impl Actor {
    /// An actor with these roles.
    pub fn new(subject: impl Into<String>, roles: impl IntoIterator<Item = Role>) -> Self {
        Actor {
            subject: subject.into(),
            roles: roles.into_iter().collect(),
        }
    }

    /// Whether any of the actor's roles grants `permission`.
    pub fn can(&self, permission: Permission) -> bool {
        permission.roles().iter().any(|r| self.roles.contains(r))
    }

    /// The role names, sorted, as stored in audit events.
    pub fn role_names(&self) -> Vec<String> {
        self.roles.iter().map(|r| r.as_str().to_owned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compliance_may_read_audit_but_not_edit_people() {
        let actor = Actor::new("c", [Role::Compliance]);
        assert!(actor.can(Permission::ReadAudit));
        assert!(!actor.can(Permission::EditPeople));
        assert!(!actor.can(Permission::Resubscribe));
    }

    #[test]
    fn an_actor_without_known_roles_may_do_nothing() {
        let actor = Actor::new("x", []);
        assert!(!actor.can(Permission::ReadPeople));
    }
}
